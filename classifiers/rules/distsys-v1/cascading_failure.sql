-- mode: DS1
-- name: cascading_failure
-- version: 1
-- description: The first failing step of a trace that nothing later corrects (no later
--   successful run of the same tool, or of anything when the failure names no tool) is
--   followed by the steps of at least two agents other than the one that made or asked
--   for it: the failure travelled downstream instead of being caught.
--   Evidence: the chain - the failing step, then the first later step of each other
--   agent, in order (at most 10).
WITH w AS (
    -- who a step belongs to: an execution output is the doing of the agent who asked for it
    SELECT *, last_value(CASE WHEN NOT is_exec THEN agent END IGNORE NULLS)
                  OVER (PARTITION BY trace_id ORDER BY step ROWS UNBOUNDED PRECEDING) AS author
    FROM rule_steps
),
err AS (
    SELECT e.trace_id, e.step AS e, coalesce(e.author, e.agent) AS origin
    FROM w e
    WHERE e.is_error
      AND NOT EXISTS (SELECT 1 FROM rule_steps c
                      WHERE c.trace_id = e.trace_id AND c.step > e.step AND c.is_exec AND NOT c.is_error
                        AND (e.tool_name IS NULL OR c.tool_name = e.tool_name))
    QUALIFY row_number() OVER (PARTITION BY e.trace_id ORDER BY e.step) = 1
),
down AS (
    SELECT f.trace_id, f.e, f.origin, s.agent, min(s.step) AS first_step
    FROM err f JOIN rule_steps s ON s.trace_id = f.trace_id AND s.step > f.e
    WHERE NOT s.is_exec AND s.agent IS NOT NULL AND s.agent IS DISTINCT FROM f.origin
      AND coalesce(s.role, '') NOT IN ('user', 'system', 'tool')
    GROUP BY f.trace_id, f.e, f.origin, s.agent
)
SELECT trace_id, 'DS1' AS mode, least(0.9, 0.4 + 0.1 * count(*)) AS confidence,
       ([any_value(e)] || list(first_step ORDER BY first_step))[1:10] AS evidence_steps,
       'the failure at step ' || any_value(e) || ' (' || coalesce(any_value(origin), '(unnamed agent)')
       || ') is taken up uncorrected by ' || string_agg(agent || ' (step ' || first_step || ')', ', ' ORDER BY first_step)
           AS rationale
FROM down
GROUP BY trace_id
HAVING count(*) >= 2
