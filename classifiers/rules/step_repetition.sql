-- mode: 1.3
-- name: step_repetition
-- version: 1
-- role: signal
-- description: The same agent repeats near-identical content (same fingerprint: case,
--   digits, whitespace and punctuation ignored) or the same tool call with the same
--   arguments, or the agent's own ledger reports that it is in a loop.
--   Evidence: every repeat (first occurrence first), at most 20 steps.
WITH reps AS (
    SELECT trace_id, agent, 'content' AS what, list(step ORDER BY step) AS steps
    FROM rule_steps WHERE fp IS NOT NULL AND NOT is_exec
    GROUP BY trace_id, agent, fp HAVING count(*) >= 2
    UNION ALL
    SELECT trace_id, agent, 'tool call ' || any_value(tool_name), list(step ORDER BY step)
    FROM rule_steps WHERE call_hash IS NOT NULL AND kind = 'tool_call'
    GROUP BY trace_id, agent, call_hash HAVING count(*) >= 2
    UNION ALL
    SELECT trace_id, agent, 'loop self-report', list(step ORDER BY step)
    FROM rule_steps WHERE reports_loop
    GROUP BY trace_id, agent
)
SELECT trace_id, '1.3' AS mode,
       least(0.95, 0.45 + 0.1 * max(len(steps))) AS confidence,
       list_sort(list_distinct(flatten(list(steps))))[1:20] AS evidence_steps,
       string_agg(coalesce(agent, '(unnamed agent)') || ' repeated ' || what || ' ' || len(steps) || 'x (steps '
                  || array_to_string(steps[1:6], ', ') || CASE WHEN len(steps) > 6 THEN ', ...' ELSE '' END || ')', '; '
                  ORDER BY steps, what) AS rationale
FROM reps
GROUP BY trace_id
