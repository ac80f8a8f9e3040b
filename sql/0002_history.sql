-- 0002: history — every message and state change from the Redis event
-- stream, written by the archiver in `wxkf jobs` (exactly once: each row
-- carries the stream entry id it came from, and inserts skip conflicts).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Every inbound (direction 'i') and outbound ('o') message. Partitioned by
-- month; a unique key on a partitioned table must include the partition
-- key, so the natural key is (event_id, created_at), where created_at comes
-- from the event itself (deterministic when an entry is delivered again).
CREATE TABLE messages (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    event_id    text NOT NULL,          -- Redis stream entry id
    msgid       text,                   -- WeChat MsgId (in), our m_… id (out)
    session_id  bigint,                 -- wxkf session id, when there is one
    openid      text NOT NULL,
    agent       text,
    direction   char(1) NOT NULL CHECK (direction IN ('i', 'o')),
    msgtype     text NOT NULL,
    content     text,                   -- text / recognition / title …
    media_id    text,
    status      text,                   -- outbound: sending, queued, sent, failed
    errcode     integer,
    payload     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (id, created_at),
    UNIQUE (event_id, created_at)
) PARTITION BY RANGE (created_at);

-- Catches anything outside the monthly partitions, so an insert never fails
-- for want of a partition (wxkf_ensure_month creates them ahead of time).
CREATE TABLE messages_default PARTITION OF messages DEFAULT;

CREATE INDEX messages_user_time ON messages (openid, created_at DESC, id DESC);
CREATE INDEX messages_session ON messages (session_id, created_at, id)
    WHERE session_id IS NOT NULL;
CREATE INDEX messages_msgid ON messages (msgid) WHERE msgid IS NOT NULL;
CREATE INDEX messages_content_trgm ON messages USING gin (content gin_trgm_ops);

-- Creates the partition of the month containing ts (idempotent). Rows of
-- that month already in the default partition are moved into it.
CREATE FUNCTION wxkf_ensure_month(ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := lo + interval '1 month';
    name text := 'messages_' || to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(name));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN;
    END IF;
    DROP TABLE IF EXISTS pg_temp.wxkf_moving;
    EXECUTE format('CREATE TEMP TABLE wxkf_moving AS '
                   'SELECT * FROM messages_default WHERE created_at >= %L '
                   'AND created_at < %L', lo, hi);
    EXECUTE format('DELETE FROM messages_default WHERE created_at >= %L '
                   'AND created_at < %L', lo, hi);
    EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES '
                   'FROM (%L) TO (%L)', name, lo, hi);
    EXECUTE 'INSERT INTO messages OVERRIDING SYSTEM VALUE '
            'SELECT * FROM wxkf_moving';
    DROP TABLE pg_temp.wxkf_moving;
END $$;

SELECT wxkf_ensure_month(now());
SELECT wxkf_ensure_month(now() + interval '1 month');

-- A session's life: opened (first assignment or queue), its agent (the
-- latest), closed with a reason.
CREATE TABLE sessions (
    id           bigint PRIMARY KEY,    -- wxkf session id
    openid       text NOT NULL,
    agent        text,
    grp          text,
    opened_at    timestamptz NOT NULL,
    assigned_at  timestamptz,
    closed_at    timestamptz,
    close_reason text,
    why          jsonb                  -- the latest routing decision
);
CREATE INDEX sessions_openid ON sessions (openid, opened_at DESC);
CREATE INDEX sessions_agent_open ON sessions (agent) WHERE closed_at IS NULL;

-- Assignments other than the first: transfers and re-routes.
CREATE TABLE transfers (
    event_id    text PRIMARY KEY,
    session_id  bigint,
    openid      text NOT NULL,
    to_agent    text,
    grp         text,
    kind        text NOT NULL,          -- transfer, reassign
    reason      text,
    at          timestamptz NOT NULL
);
CREATE INDEX transfers_session ON transfers (session_id, at);

CREATE TABLE presence_changes (
    event_id    text PRIMARY KEY,
    agent       text NOT NULL,
    status      text NOT NULL,
    prev        text,
    reason      text,
    at          timestamptz NOT NULL
);
CREATE INDEX presence_changes_agent ON presence_changes (agent, at DESC);

-- Admin actions (agents created, changed, removed; tokens issued).
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,          -- 'cli', 'admin', an agent
    action      text NOT NULL,
    target      text,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
