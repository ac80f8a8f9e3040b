// wxkf console — the agent's live feed, missing nothing and showing nothing
// twice.
//
// The feed GET /api/v1/me/events?after=CURSOR pages through the agent's
// inbox stream; CURSOR is a Redis stream id ("ms-seq"), kept in
// sessionStorage per account so a reload resumes where it stopped.
//
// Push: POST /api/v1/me/stream-ticket gives a one-minute ticket for an
// EventSource whose messages carry {"events":[entries with "id"]}. When it
// opens we catch up from the feed (looping until a short page); pushed
// entries are applied only if their id is greater than the cursor, which
// they advance. On an error the EventSource is closed, we catch up and
// reconnect with a fresh ticket (backoff). While no EventSource is open
// (endpoint 404/503, reconnecting) the feed is polled every 2 s.
//
// The state follows what really happens: a catch-up the network failed
// is 'down'; the next one that succeeds is 'polling' again and reopens
// the push at once (no backoff left over from the outage). After an
// outage the push is reopened even if its EventSource still looks open:
// a dropped network can leave a dead connection that never errors (and
// Nchan's pings carry no data, so a page never sees them).
//
// All feed work runs one task at a time (a promise chain), so a catch-up
// and a pushed batch never interleave.

import {api, ApiError} from './api.js';

const PAGE = 500;
const POLL_MS = 2000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const PUSH_RETRY_UNAVAILABLE_MS = 60000;
const MAX_PAGES_PER_CATCHUP = 100;

const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/;

export function isStreamId(s) {
    return typeof s === 'string' && STREAM_ID.test(s);
}

// Compare two Redis stream ids numerically (ms, then seq): -1, 0, 1.
export function cmpStreamId(a, b) {
    const ma = STREAM_ID.exec(a), mb = STREAM_ID.exec(b);
    const ams = BigInt(ma[1]), bms = BigInt(mb[1]);
    if (ams !== bms)
        return ams < bms ? -1 : 1;
    const as = BigInt(ma[2]), bs = BigInt(mb[2]);
    return as === bs ? 0 : (as < bs ? -1 : 1);
}

// The stream id of a feed entry ("id"; a message's own id is "msg_id").
export function streamIdOf(e) {
    if (e && isStreamId(e.stream_id))
        return e.stream_id;
    if (e && isStreamId(e.id))
        return e.id;
    return null;
}

export class Feed {
    // onEvents(entries, {source: 'feed'|'push'}); onState('push'|'polling'|
    // 'connecting'|'down'); onError(err) for errors worth showing.
    constructor({account, onEvents, onState, onError}) {
        this.key = 'wxkf.cursor.' + account;
        this.onEvents = onEvents;
        this.onState = onState || (() => {});
        this.onError = onError || (() => {});
        this.cursor = loadCursor(this.key);
        this.chain = Promise.resolve();
        this.es = null;
        this.pushOpen = false;
        this.stopped = true;
        this.backoff = BACKOFF_MIN_MS;
        this.pollTimer = null;
        this.pushTimer = null;
        this.state = '';
        this.pushGen = 0;       // the newest connectPush; older ones give up
        this.stats = {pushed: 0, polled: 0, dropped: 0};
    }

    start() {
        this.stopped = false;
        this.setState('connecting');
        this.enqueue(() => this.catchUp('feed'));
        this.schedulePoll();
        this.connectPush();
    }

    stop() {
        this.stopped = true;
        this.closeEs();
        clearTimeout(this.pollTimer);
        clearTimeout(this.pushTimer);
        this.pollTimer = this.pushTimer = null;
    }

    // The network is back (the browser's online event, a request
    // answered after one the network failed, a feed page after a failed
    // one): catch up now and open a new push stream without waiting out
    // the backoff.
    kick() {
        if (this.stopped)
            return;
        this.backoff = BACKOFF_MIN_MS;
        this.closeEs();
        this.enqueue(() => this.catchUp('feed'));
        clearTimeout(this.pushTimer);
        this.connectPush();
    }

    // Run fn after every task queued before it; errors are reported, not
    // propagated (the chain keeps going).
    enqueue(fn) {
        const run = async () => {
            if (this.stopped)
                return;
            try {
                await fn();
            } catch (e) {
                if (!this.stopped)
                    this.onError(e);
            }
        };
        this.chain = this.chain.then(run, run);
        return this.chain;
    }

    setState(s) {
        if (this.state !== s) {
            this.state = s;
            this.onState(s);
        }
    }

    advance(id) {
        if (!isStreamId(id))
            return;
        if (this.cursor && cmpStreamId(id, this.cursor) <= 0)
            return;
        this.cursor = id;
        saveCursor(this.key, id);
    }

    // Page through the feed from the cursor until a short page.
    async catchUp(source) {
        for (let i = 0; i < MAX_PAGES_PER_CATCHUP && !this.stopped; i++) {
            let page;
            try {
                page = await api.get('/api/v1/me/events', {
                    query: {after: this.cursor, limit: PAGE}});
            } catch (e) {
                if (e instanceof ApiError && e.status === 0)
                    this.setState('down');
                if (!(e instanceof ApiError) || e.status !== 400 || !this.cursor)
                    throw e;
                // a cursor the server does not take: start over
                this.cursor = '';
                saveCursor(this.key, '');
                continue;
            }
            const evs = (page && Array.isArray(page.events)) ? page.events : [];
            const fresh = evs.filter(e => {
                const sid = streamIdOf(e);
                return !(sid && this.cursor && cmpStreamId(sid, this.cursor) <= 0);
            });
            if (fresh.length) {
                this.stats.polled += fresh.length;
                this.onEvents(fresh, {source});
            }
            for (const e of evs)
                this.advance(streamIdOf(e));
            if (page && page.next)
                this.advance(page.next);
            this.reached();
            if (evs.length < PAGE)
                break;
        }
    }

    // A feed page came: the feed is up (push if the stream is open).
    reached() {
        const was = this.state;
        if (!this.pushOpen && was === 'connecting')
            return;         // the first push attempt decides
        this.setState(this.pushOpen ? 'push' : 'polling');
        if (was === 'down')
            this.kick();
    }

    applyPushed(msg) {
        let data;
        try {
            data = JSON.parse(msg.data);
        } catch (e) {
            return;
        }
        // prev is the feed id just before this batch: newer than our
        // cursor means something in between never reached us (a publish
        // that failed, a restart of wxkf jobs): take it all from the feed.
        if (data && isStreamId(data.prev) && this.cursor &&
            cmpStreamId(data.prev, this.cursor) > 0) {
            this.stats.gaps = (this.stats.gaps || 0) + 1;
            return this.catchUp('push');
        }
        const evs = (data && Array.isArray(data.events)) ? data.events : [];
        const fresh = [];
        for (const e of evs) {
            const sid = streamIdOf(e);
            if (sid && this.cursor && cmpStreamId(sid, this.cursor) <= 0) {
                this.stats.dropped++;
                continue;
            }
            fresh.push(e);
            // advance per entry, so a repeated entry in the same batch
            // is dropped too
            if (sid)
                this.advance(sid);
        }
        if (data && isStreamId(data.next))
            this.advance(data.next);
        if (isStreamId(msg.lastEventId))
            this.advance(msg.lastEventId);
        if (fresh.length) {
            this.stats.pushed += fresh.length;
            this.onEvents(fresh, {source: 'push'});
        }
    }

    schedulePoll() {
        clearTimeout(this.pollTimer);
        if (this.stopped)
            return;
        this.pollTimer = setTimeout(() => {
            if (this.stopped)
                return;
            if (this.pushOpen) {
                this.schedulePoll();
                return;
            }
            this.enqueue(() => this.catchUp('feed')).then(() =>
                this.schedulePoll());
        }, POLL_MS);
    }

    closeEs() {
        if (this.es) {
            this.es.onopen = this.es.onmessage = this.es.onerror = null;
            this.es.close();
            this.es = null;
        }
        this.pushOpen = false;
    }

    pushFailed(es) {
        if (this.es !== es)
            return;
        this.closeEs();
        this.setState('polling');
        this.enqueue(() => this.catchUp('feed'));
        this.retryPush(this.nextBackoff());
    }

    retryPush(ms) {
        clearTimeout(this.pushTimer);
        if (this.stopped)
            return;
        this.pushTimer = setTimeout(() => this.connectPush(), ms);
    }

    nextBackoff() {
        const ms = this.backoff;
        this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
        return ms / 2 + Math.random() * ms / 2;
    }

    async connectPush() {
        if (this.stopped || this.es)
            return;
        const gen = ++this.pushGen;
        let ticket;
        try {
            ticket = await api.post('/api/v1/me/stream-ticket', {});
        } catch (e) {
            if (this.stopped || gen !== this.pushGen)
                return;
            if (e instanceof ApiError && [404, 405, 501, 503].includes(e.status)) {
                // No push here: the 2 s poll carries the feed.
                this.setState('polling');
                this.retryPush(PUSH_RETRY_UNAVAILABLE_MS);
            } else if (e instanceof ApiError && e.status === 401) {
                this.stop();        // the app signs out
            } else {
                this.setState(e.status === 0 ? 'down' : 'polling');
                this.retryPush(this.nextBackoff());
            }
            return;
        }
        if (this.stopped || gen !== this.pushGen)
            return;         // stopped, or a newer attempt (kick) took over
        const url = ticket && typeof ticket.url === 'string' &&
            ticket.url.startsWith('/') ? ticket.url :
            '/api/v1/me/stream?ticket=' +
            encodeURIComponent(ticket && ticket.ticket || '');
        const es = new EventSource(url);
        this.es = es;
        es.onopen = () => {
            if (this.es !== es)
                return;
            this.pushOpen = true;
            this.backoff = BACKOFF_MIN_MS;
            this.setState('push');
            this.enqueue(() => this.catchUp('feed'));
        };
        es.onmessage = (m) => {
            if (this.es === es)
                this.enqueue(() => this.applyPushed(m));
        };
        es.onerror = () => this.pushFailed(es);
    }
}

function loadCursor(key) {
    try {
        const c = sessionStorage.getItem(key);
        return isStreamId(c) ? c : '';
    } catch (e) {
        return '';
    }
}

function saveCursor(key, c) {
    try {
        sessionStorage.setItem(key, c);
    } catch (e) {
        /* not persisted: a reload replays from the start */
    }
}
