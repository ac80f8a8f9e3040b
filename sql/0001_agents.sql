-- 0001: agents — the people who answer users. Kept in PostgreSQL (the
-- source of truth) and mirrored into Redis for routing. Presence (online,
-- paused, offline) lives in Redis only; its changes are events.
CREATE TABLE agents (
    account     text PRIMARY KEY
                CHECK (account ~ '^[A-Za-z0-9_]{1,10}(@[A-Za-z0-9_-]{1,30})?$'),
    nick        text NOT NULL CHECK (length(nick) BETWEEN 1 AND 64),
    weight      integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 100),
    capacity    integer CHECK (capacity BETWEEN 1 AND 10000),
    groups      text[] NOT NULL DEFAULT '{}'
                CHECK (array_length(groups, 1) IS NULL OR array_length(groups, 1) <= 16),
    token_sha256 bytea CHECK (token_sha256 IS NULL OR length(token_sha256) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX agents_token_sha256 ON agents (token_sha256)
    WHERE token_sha256 IS NOT NULL;
