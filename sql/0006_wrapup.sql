-- 0006: wrap-up — what an agent writes when it closes a session: a
-- summary of at most 500 characters and up to 5 labels of the account's
-- list (POST /api/v1/sessions/{openid}/close {"summary", "labels"}). Both
-- travel in the session's close event (its payload: the labels by name)
-- and the archiver keeps them on the session with the close they came
-- with: the first close of a session wins, whatever order entries arrive
-- in, so an entry delivered twice (a `wxkf jobs` restart between COMMIT
-- and XACK) writes them once (docs/history.md).
ALTER TABLE sessions ADD COLUMN summary text;
ALTER TABLE sessions ADD COLUMN labels text[];

-- The labels admins define per account (lib/label; GET/POST
-- /api/v1/labels, PATCH/DELETE /api/v1/labels/{id}). A session keeps the
-- names it was closed with: renaming or removing a label changes no past
-- session.
CREATE TABLE labels (
    app_id      text NOT NULL,          -- the account ([wechat] app_id)
    id          bigint GENERATED ALWAYS AS IDENTITY,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 20),
    color       text NOT NULL CHECK (color ~ '^#[0-9a-f]{6}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id),
    UNIQUE (app_id, name)
);

-- Searching past sessions by their summary and their labels
-- (GET /api/v1/history/sessions?q=...&label=...).
CREATE INDEX sessions_summary_trgm ON sessions USING gin (summary gin_trgm_ops)
    WHERE summary IS NOT NULL;
CREATE INDEX sessions_labels ON sessions USING gin (labels)
    WHERE labels IS NOT NULL;
-- An agent's past sessions, newest first (and every agent's, for admins).
CREATE INDEX sessions_agent_closed ON sessions (agent, closed_at DESC, id DESC)
    WHERE closed_at IS NOT NULL;
CREATE INDEX sessions_closed ON sessions (closed_at DESC, id DESC)
    WHERE closed_at IS NOT NULL;
