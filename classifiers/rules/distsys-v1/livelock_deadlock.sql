-- mode: DS2
-- name: livelock_deadlock
-- version: 1
-- role: signal
-- description: Inside one stretch of a trace with no tool call, tool result or
--   execution output (no new result, no change of state), at least two agents each
--   repeat near-identical content they already said in that stretch (same fingerprint
--   as the feature pass's), or agents hand the work straight back to whoever handed it
--   to them at least twice (A to B, B to A, A to B).
--   Evidence: the repeated steps (first occurrences included) or the handoffs, at most 20.
WITH cand AS (
    -- only traces where some agent repeats itself or hands work over twice can qualify:
    -- one cheap GROUP BY spares the windows below on every other trace
    SELECT DISTINCT trace_id FROM (
        SELECT trace_id FROM rule_steps WHERE fp IS NOT NULL AND agent IS NOT NULL
        GROUP BY trace_id, agent, fp HAVING count(*) >= 2
        UNION ALL
        SELECT trace_id FROM rule_steps WHERE kind = 'handoff' GROUP BY trace_id HAVING count(*) >= 3)
),
w AS (
    SELECT trace_id, step, agent, role, kind, target_agent, fp,
           -- a stretch ends at each piece of work: the count of work steps so far names it
           count(*) FILTER (WHERE kind IN ('tool_call', 'tool_result') OR is_exec)
               OVER (PARTITION BY trace_id ORDER BY step ROWS UNBOUNDED PRECEDING) AS stretch
    FROM rule_steps SEMI JOIN cand USING (trace_id)
),
talk AS (
    SELECT *, count(*) OVER (PARTITION BY trace_id, stretch, agent, fp) AS same
    FROM w
    WHERE kind IN ('message', 'handoff', 'llm_call') AND agent IS NOT NULL
      AND coalesce(role, '') NOT IN ('user', 'system', 'tool')
),
echo AS (
    SELECT trace_id, stretch, 'repeat' AS what,
           list(step ORDER BY step) AS steps, count(DISTINCT agent) AS agents,
           string_agg(DISTINCT agent, ' and ' ORDER BY agent) AS who
    FROM talk WHERE fp IS NOT NULL AND same >= 2
    GROUP BY trace_id, stretch HAVING count(DISTINCT agent) >= 2
),
hand AS (
    SELECT trace_id, stretch, step, agent, target_agent,
           lag(agent) OVER (PARTITION BY trace_id, stretch ORDER BY step) AS prev_from,
           lag(target_agent) OVER (PARTITION BY trace_id, stretch ORDER BY step) AS prev_to,
           lag(step) OVER (PARTITION BY trace_id, stretch ORDER BY step) AS prev_step
    FROM talk WHERE kind = 'handoff' AND target_agent IS NOT NULL
),
bounce AS (
    SELECT trace_id, stretch, 'handoff back and forth' AS what,
           list_sort(list_distinct(flatten(list([prev_step, step])))) AS steps, 2 AS agents,
           string_agg(DISTINCT agent, ' and ' ORDER BY agent) AS who
    FROM hand WHERE agent = prev_to AND target_agent = prev_from
    GROUP BY trace_id, stretch HAVING count(*) >= 2
),
hits AS (SELECT * FROM echo UNION ALL SELECT * FROM bounce)
SELECT trace_id, 'DS2' AS mode, least(0.9, 0.4 + 0.05 * max(len(steps))) AS confidence,
       list_sort(list_distinct(flatten(list(steps))))[1:20] AS evidence_steps,
       string_agg(who || ': ' || what || ' with no tool result in between (steps '
                  || array_to_string(steps[1:6], ', ') || CASE WHEN len(steps) > 6 THEN ', ...' ELSE '' END || ')', '; '
                  ORDER BY steps, what) AS rationale
FROM hits
GROUP BY trace_id
