-- 0010: the audit log of staff actions (issue 18). Every state-changing
-- staff action is one row: who (actor: a staff login, an agent account,
-- 'admin' for the bootstrap token, 'cli' for a command), in which role,
-- what (action, e.g. 'session.transfer'), on what (target), from where
-- (ip), under which request (request_id, nginx's $request_id), for which
-- account (app_id). A row is written in the same PostgreSQL transaction
-- as the action, or — for an action done in Redis — by the action's own
-- Lua script as a `type=audit` entry on the event stream, which the
-- archiver copies here exactly once (event_id = the stream entry's id).
ALTER TABLE audit_log
    ADD COLUMN app_id     text NOT NULL DEFAULT '',
    ADD COLUMN role       text,
    ADD COLUMN ip         text,
    ADD COLUMN request_id text,
    ADD COLUMN event_id   text;
CREATE UNIQUE INDEX audit_log_event ON audit_log (app_id, event_id)
    WHERE event_id IS NOT NULL;
CREATE INDEX audit_log_app_at ON audit_log (app_id, at DESC);
CREATE INDEX audit_log_app_actor ON audit_log (app_id, actor, at DESC);
CREATE INDEX audit_log_app_action ON audit_log (app_id, action, at DESC);
