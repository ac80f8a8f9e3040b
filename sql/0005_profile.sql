-- 0005: who a user is — what WeChat's cgi-bin/user/info said (looked up
-- by `wxkf jobs`, at most once a day per user), the display name agents
-- give (WeChat no longer returns nicknames), the remark (pushed to WeChat
-- with user/info/updateremark), and agents' private notes on a user.
-- Keyed by the account's AppID and the OpenID (an OpenID is per account).
CREATE TABLE user_profiles (
    app_id        text NOT NULL,
    openid        text NOT NULL CHECK (openid ~ '^[A-Za-z0-9_-]{1,64}$'),
    display_name  text CHECK (char_length(display_name) BETWEEN 1 AND 64),
    remark        text CHECK (char_length(remark) <= 30),
    info          jsonb,                -- the kept fields of user/info
    fetched_at    timestamptz,          -- the last look-up (or its error)
    fetch_errcode integer,              -- WeChat's error of the last one
    fetch_error   text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, openid)
);

CREATE TABLE user_notes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id      text NOT NULL,
    openid      text NOT NULL,
    author      text NOT NULL,          -- an agent's account, or 'admin'
    body        text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_notes_user ON user_notes (app_id, openid, created_at DESC);

-- "Has this agent ever served this user?" (the profile's authorization)
-- looks at sessions (the latest agent) and transfers (earlier ones).
CREATE INDEX transfers_openid ON transfers (openid, to_agent);
