-- 0003: what the archiver (`wxkf jobs`, lib/archive.c) needs beyond 0002.
-- Every row it writes carries the Redis stream entry id it came from, and
-- every write is idempotent and commutative: an entry delivered twice, or
-- two entries written by two archivers in either order, leave the same
-- rows (see docs/history.md).

-- Stream entry ids ("<ms>-<seq>") in stream order: compare these arrays.
CREATE FUNCTION wxkf_event_ord(id text) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ARRAY[split_part(id, '-', 1)::bigint,
                 split_part(id, '-', 2)::bigint]
$$;

-- The assignment (assign, reassign, transfer) that set the session's
-- agent, grp and why: a later one wins, whatever order they arrive in.
ALTER TABLE sessions ADD COLUMN routed_by text;

-- Every delivery event of an outbound message. messages.status and
-- errcode are the latest of these (in stream order), recomputed whenever
-- a msg_out or a delivery is archived, so a delivery archived before its
-- message is not lost.
CREATE TABLE deliveries (
    event_id    text PRIMARY KEY,
    msgid       text NOT NULL,          -- the message's id (messages.msgid)
    openid      text,
    agent       text,
    status      text NOT NULL,          -- queued, sent, failed
    errcode     integer,
    errmsg      text,
    at          timestamptz NOT NULL
);
CREATE INDEX deliveries_msgid ON deliveries (msgid);

-- Media of inbound messages fetched from WeChat by `wxkf jobs`
-- (media_stored and media_failed events).
CREATE TABLE media_files (
    event_id      text PRIMARY KEY,
    message_event text,                 -- messages.event_id of the message
    media_id      text NOT NULL,
    openid        text,
    status        text NOT NULL CHECK (status IN ('stored', 'failed')),
    path          text,                 -- under [media] dir
    content_type  text,
    size          bigint,
    reason        text,                 -- failed: why
    errcode       integer,
    errmsg        text,
    at            timestamptz NOT NULL
);
CREATE INDEX media_files_media_id ON media_files (media_id);
CREATE INDEX media_files_message ON media_files (message_event);

-- Events with no table of their own (first_reply_late, and any type this
-- version does not know): every field, as a JSON object of strings.
CREATE TABLE other_events (
    event_id    text PRIMARY KEY,
    type        text NOT NULL,
    openid      text,
    fields      jsonb NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX other_events_type ON other_events (type, at);

-- Entries PostgreSQL refused even on their own (not UTF-8, a payload that
-- is not JSON, ...). Kept here, not lost, and acknowledged, so one bad
-- entry never stops the archive. raw is the entry as netstrings
-- ("<len>:<bytes>,") of field, value, field, value, ...
CREATE TABLE archive_rejects (
    event_id    text PRIMARY KEY,
    raw         bytea NOT NULL,
    error       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
