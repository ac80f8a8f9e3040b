-- 0004: canned replies (常用语) — texts an agent inserts in the composer.
-- Shared ones belong to the account (admins manage them, grouped in
-- folders); personal ones to one agent (deleted with the agent). Every
-- row carries the Official Account's app_id ([wechat] app_id) in its key:
-- many accounts later are configuration. Lengths are characters and are
-- checked in C first (lib/canned.h); these checks are the backstop.
CREATE TABLE canned_replies (
    app_id      text NOT NULL CHECK (length(app_id) BETWEEN 1 AND 32),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    scope       text NOT NULL CHECK (scope IN ('shared', 'personal')),
    owner       text REFERENCES agents (account) ON DELETE CASCADE,
    folder      text NOT NULL DEFAULT '' CHECK (length(folder) <= 32),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 64),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 1000),
    sort        integer NOT NULL DEFAULT 0 CHECK (sort BETWEEN 0 AND 1000000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id),
    CHECK ((scope = 'shared') = (owner IS NULL))
);
-- A list: one account's shared rows, or one agent's, in display order.
CREATE INDEX canned_replies_list
    ON canned_replies (app_id, scope, owner, folder, sort, id);
CREATE INDEX canned_replies_owner ON canned_replies (owner)
    WHERE owner IS NOT NULL;
