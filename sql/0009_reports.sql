-- 0009: reports — daily roll-ups of the archived history (docs/reports.md),
-- built by `wxkf jobs` (today and yesterday, every [reports]
-- refresh_minutes) and by `wxkf report rebuild` for any day. One row per
-- account, day and dimension: kind 'agent' (dim = the agent's account),
-- 'group' (dim = the group, '' = none) or 'hour' (dim = '00'..'23', the
-- hour of the day). A day is the calendar day at [api] stats_utc_offset.
-- The archive tables (messages, sessions, transfers) hold the one account
-- a deployment serves; its AppID is p_app.
CREATE TABLE report_days (
    app_id        text NOT NULL,
    day           date NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('agent', 'group', 'hour')),
    dim           text NOT NULL,
    sessions      integer NOT NULL,     -- agent/group: closed that day;
                                        -- hour: opened in that hour
    msgs_in       integer NOT NULL,     -- users' messages
    msgs_out      integer NOT NULL,     -- staff's messages (not wxkf's own)
    frt_ms        bigint[]   NOT NULL,   -- each session's first response
    frt_median_s  double precision,
    frt_p90_s     double precision,
    handled       integer NOT NULL,     -- sessions assigned and closed
    handle_ms     bigint NOT NULL,      -- their assignment → close, summed
    transfers     integer NOT NULL,     -- transfers received
    queued        integer NOT NULL,     -- sessions that waited in a queue
    wait_ms       bigint[]   NOT NULL,   -- their wait until assigned
    wait_median_s double precision,
    wait_p90_s    double precision,
    abandoned     integer NOT NULL,     -- closed while still waiting
    after_hours   integer NOT NULL,     -- users' messages out of hours
    agents        integer NOT NULL,     -- distinct agents who wrote
    labels        jsonb NOT NULL,       -- wrap-up label → sessions
    built_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, day, kind, dim)
);

-- Replaces the rows of (p_app, p_day) with rows computed from the
-- archive, in the caller's transaction (a day rebuilt twice gives the
-- same rows). p_offset: minutes from UTC of the day; working hours are
-- p_start:00 .. p_end:00 on the ISO weekdays whose digits are in p_days
-- ('12345' = Monday to Friday). Returns the rows written.
CREATE FUNCTION wxkf_report_build(p_app text, p_day date, p_offset integer,
                                  p_start integer, p_end integer,
                                  p_days text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    off interval := make_interval(mins => p_offset);
    lo timestamptz := (p_day::timestamp - off) AT TIME ZONE 'UTC';
    hi timestamptz := lo + interval '1 day';
    written integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('wxkf_report:' || p_app),
                                  p_day - date '2000-01-01');
    DELETE FROM report_days WHERE app_id = p_app AND day = p_day;
    WITH s AS (
        SELECT se.id, se.agent, coalesce(se.grp, '') AS grp, se.labels,
               se.closed_at >= lo AND se.closed_at < hi AS closed_in,
               se.opened_at >= lo AND se.opened_at < hi AS opened_in,
               to_char((se.opened_at AT TIME ZONE 'UTC') + off, 'HH24') AS hh,
               (se.assigned_at IS NULL OR se.assigned_at > se.opened_at)
                   AS queued,
               se.assigned_at IS NULL AND se.closed_at IS NOT NULL
                   AS abandoned,
               (extract(epoch FROM se.assigned_at - se.opened_at) * 1000)::bigint
                   AS wait_ms,
               (extract(epoch FROM se.closed_at - se.assigned_at) * 1000)::bigint
                   AS handle_ms,
               (SELECT (extract(epoch FROM min(m.created_at) - se.assigned_at)
                        * 1000)::bigint
                  FROM messages m
                 WHERE m.session_id = se.id AND m.direction = 'o'
                   AND coalesce(m.payload->>'by', '') <> 'wxkf'
                   AND m.created_at >= se.assigned_at) AS frt_ms
          FROM sessions se
         WHERE (se.closed_at >= lo AND se.closed_at < hi)
            OR (se.opened_at >= lo AND se.opened_at < hi)),
    sf AS (
        SELECT d.kind, d.dim, s.*
          FROM s CROSS JOIN LATERAL (VALUES
               ('agent', CASE WHEN s.closed_in THEN s.agent END),
               ('group', CASE WHEN s.closed_in THEN s.grp END),
               ('hour', CASE WHEN s.opened_in THEN s.hh END)) d(kind, dim)
         WHERE d.dim IS NOT NULL),
    m AS (
        SELECT m.direction, m.agent, coalesce(se.grp, '') AS grp,
               (m.created_at AT TIME ZONE 'UTC') + off AS lt
          FROM messages m LEFT JOIN sessions se ON se.id = m.session_id
         WHERE m.created_at >= lo AND m.created_at < hi
           AND (m.direction = 'i'
                OR coalesce(m.payload->>'by', '') <> 'wxkf')),
    mf AS (
        SELECT d.kind, d.dim, m.direction, m.agent,
               m.direction = 'i' AND NOT (
                   strpos(p_days, extract(isodow FROM m.lt)::int::text) > 0
                   AND extract(hour FROM m.lt) >= p_start
                   AND extract(hour FROM m.lt) < p_end) AS after
          FROM m CROSS JOIN LATERAL (VALUES ('agent', m.agent),
               ('group', m.grp), ('hour', to_char(m.lt, 'HH24'))) d(kind, dim)
         WHERE d.dim IS NOT NULL),
    tf AS (
        SELECT d.kind, d.dim
          FROM transfers t CROSS JOIN LATERAL (VALUES
               ('agent', t.to_agent), ('group', coalesce(t.grp, '')),
               ('hour', to_char((t.at AT TIME ZONE 'UTC') + off, 'HH24')))
               d(kind, dim)
         WHERE t.kind = 'transfer' AND t.at >= lo AND t.at < hi
           AND d.dim IS NOT NULL),
    sa AS (
        SELECT kind, dim, count(*) AS sessions,
               coalesce(array_agg(frt_ms ORDER BY frt_ms)
                        FILTER (WHERE frt_ms IS NOT NULL), '{}') AS frt,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY frt_ms) / 1000
                   AS frt_med,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY frt_ms) / 1000
                   AS frt_p90,
               count(handle_ms) AS handled,
               coalesce(sum(handle_ms), 0) AS handle_ms,
               count(*) FILTER (WHERE queued) AS queued,
               coalesce(array_agg(wait_ms ORDER BY wait_ms)
                        FILTER (WHERE queued AND wait_ms IS NOT NULL), '{}')
                   AS wait,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms)
                   FILTER (WHERE queued) / 1000 AS wait_med,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_ms)
                   FILTER (WHERE queued) / 1000 AS wait_p90,
               count(*) FILTER (WHERE abandoned) AS abandoned
          FROM sf GROUP BY kind, dim),
    la AS (
        SELECT kind, dim, jsonb_object_agg(l, n) AS labels
          FROM (SELECT kind, dim, l, count(*) AS n
                  FROM sf, unnest(sf.labels) l
                 GROUP BY kind, dim, l) x
         GROUP BY kind, dim),
    ma AS (
        SELECT kind, dim, count(*) FILTER (WHERE direction = 'i') AS msgs_in,
               count(*) FILTER (WHERE direction = 'o') AS msgs_out,
               count(*) FILTER (WHERE after) AS after_hours,
               count(DISTINCT agent) FILTER (WHERE direction = 'o')
                   AS agents
          FROM mf GROUP BY kind, dim),
    ta AS (SELECT kind, dim, count(*) AS transfers FROM tf GROUP BY kind, dim),
    dims AS (SELECT kind, dim FROM sa UNION SELECT kind, dim FROM ma
             UNION SELECT kind, dim FROM ta)
    INSERT INTO report_days (app_id, day, kind, dim, sessions, msgs_in,
                             msgs_out, frt_ms, frt_median_s, frt_p90_s,
                             handled, handle_ms, transfers, queued, wait_ms,
                             wait_median_s, wait_p90_s, abandoned,
                             after_hours, agents, labels)
    SELECT p_app, p_day, d.kind, d.dim, coalesce(sa.sessions, 0),
           coalesce(ma.msgs_in, 0), coalesce(ma.msgs_out, 0),
           coalesce(sa.frt, '{}'), sa.frt_med, sa.frt_p90,
           coalesce(sa.handled, 0), coalesce(sa.handle_ms, 0),
           coalesce(ta.transfers, 0), coalesce(sa.queued, 0),
           coalesce(sa.wait, '{}'), sa.wait_med, sa.wait_p90,
           coalesce(sa.abandoned, 0), coalesce(ma.after_hours, 0),
           coalesce(ma.agents, 0), coalesce(la.labels, '{}')
      FROM dims d
      LEFT JOIN sa ON sa.kind = d.kind AND sa.dim = d.dim
      LEFT JOIN ma ON ma.kind = d.kind AND ma.dim = d.dim
      LEFT JOIN ta ON ta.kind = d.kind AND ta.dim = d.dim
      LEFT JOIN la ON la.kind = d.kind AND la.dim = d.dim
     ORDER BY d.kind, d.dim;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END $$;
