-- 0006: wrap-up — what an agent writes when it closes a session: a
-- summary of at most 500 characters (POST /api/v1/sessions/{openid}/close
-- {"summary": ...}). It travels in the session's close event (its
-- payload) and the archiver keeps it on the session with the close it
-- came with: the first close of a session wins, whatever order entries
-- arrive in, so an entry delivered twice (a `wxkf jobs` restart between
-- COMMIT and XACK) writes it once (docs/history.md).
ALTER TABLE sessions ADD COLUMN summary text;

-- Searching past sessions by their summary (GET /api/v1/history/sessions).
CREATE INDEX sessions_summary_trgm ON sessions USING gin (summary gin_trgm_ops)
    WHERE summary IS NOT NULL;
-- An agent's past sessions, newest first (and every agent's, for admins).
CREATE INDEX sessions_agent_closed ON sessions (agent, closed_at DESC, id DESC)
    WHERE closed_at IS NOT NULL;
CREATE INDEX sessions_closed ON sessions (closed_at DESC, id DESC)
    WHERE closed_at IS NOT NULL;
