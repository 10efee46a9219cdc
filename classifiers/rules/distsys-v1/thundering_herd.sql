-- mode: DS3
-- name: thundering_herd
-- version: 1
-- role: signal
-- description: Failed steps of at least two different agents whose error text or status
--   names a rate limit or contention (HTTP 429, "rate limit", "too many requests",
--   "overloaded", "resource exhausted", throttling, "server is busy") within 5 seconds
--   of each other (by the steps' start, else end, timestamps; a trace without them says
--   nothing about concurrency and is not flagged).
--   Evidence: the failed steps of the busiest 5-second window, at most 20.
WITH fail AS (
    -- only failing steps' text is read again (few steps), for words the feature pass has no flag for
    SELECT r.trace_id, r.step, r.agent, coalesce(s.started_at, s.ended_at) AS t
    FROM rule_steps r JOIN sel_steps s ON s.trace_id = r.trace_id AND s.step = r.step
    WHERE r.is_error AND r.agent IS NOT NULL AND coalesce(s.started_at, s.ended_at) IS NOT NULL
      AND regexp_matches(coalesce(s.status, '') || ' ' || coalesce(left(s.content, 4000), '') || ' '
                         || coalesce(left(s.attributes::VARCHAR, 4000), ''),
                         '(?i)(\b429\b|rate[ _-]?limit|too many requests|overloaded|resource[ _-]?exhausted|throttl|server is busy|contention)')
),
win AS (
    SELECT a.trace_id, a.step AS anchor, count(DISTINCT b.agent) AS agents,
           list(b.step ORDER BY b.step) AS steps, string_agg(DISTINCT b.agent, ', ' ORDER BY b.agent) AS who
    FROM fail a JOIN fail b ON b.trace_id = a.trace_id AND b.t >= a.t AND b.t <= a.t + INTERVAL 5 SECOND
    GROUP BY a.trace_id, a.step
    HAVING count(DISTINCT b.agent) >= 2
)
SELECT trace_id, 'DS3' AS mode, least(0.95, 0.5 + 0.15 * max(agents)) AS confidence,
       arg_max(steps, (agents, len(steps), -anchor))[1:20] AS evidence_steps,
       arg_max(agents, (agents, len(steps), -anchor)) || ' agents (' || arg_max(who, (agents, len(steps), -anchor))
       || ') fail on rate limits or contention within 5 s (steps '
       || array_to_string(arg_max(steps, (agents, len(steps), -anchor))[1:6], ', ') || ')' AS rationale
FROM win
GROUP BY trace_id
