-- 0008: staff users — the people who sign in to the console with a
-- password (lib/staff; `wxkf user add|passwd|disable|list`,
-- POST /api/v1/auth/login). Each has a role: agent (linked to its agent
-- account in the agents table, so routing does not change), supervisor
-- or admin. Passwords are kept only as argon2id encoded hashes
-- (lib/password: the parameters are in the string, docs/security.md).
-- Sessions live in Redis under the account prefix, never here.
CREATE TABLE staff_users (
    app_id        text NOT NULL,        -- the account ([wechat] app_id)
    login         text NOT NULL CHECK (login ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    display_name  text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 64),
    role          text NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    agent         text,                 -- role agent: its agents.account
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, login),
    CHECK ((role = 'agent') = (agent IS NOT NULL))
);
-- One user per agent account.
CREATE UNIQUE INDEX staff_users_agent ON staff_users (app_id, agent)
    WHERE agent IS NOT NULL;
