-- 0012: API tokens of machine clients (lib/api_token; issue 18) — named,
-- scoped, revocable bearer tokens an admin makes (POST /api/v1/tokens,
-- `wxkf token add`). The secret ("wxt_" + 64 hex) is shown once and kept
-- only as its SHA-256 (token_sha256). scopes is a subset of the fixed set
-- docs/api.md lists ("API tokens"). last_used_at is written at most once
-- a minute per token; revoked_at set = the token is refused from the next
-- request on (a row is never deleted: the list shows who made what).
CREATE TABLE api_tokens (
    app_id        text NOT NULL,        -- the account ([wechat] app_id)
    id            bigserial NOT NULL,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) >= 1 AND
                      scopes <@ ARRAY['read', 'agents', 'reports',
                                      'history']::text[]),
    token_sha256  text NOT NULL CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_by    text NOT NULL,        -- a staff login, 'admin' (the
                                        -- bootstrap token) or 'cli'
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    PRIMARY KEY (app_id, id)
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (app_id, token_sha256);
-- A name means one live token.
CREATE UNIQUE INDEX api_tokens_name ON api_tokens (app_id, name)
    WHERE revoked_at IS NULL;
