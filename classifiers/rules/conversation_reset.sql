-- mode: 2.1
-- name: conversation_reset
-- version: 1
-- description: Work restarts mid-trace: after the first two steps, a step restates the
--   task (the task's first 60 characters appear within the step's first 2,000), or an
--   agent says it starts over.
WITH hits AS (
    SELECT trace_id, 0.5 AS c, list(step ORDER BY step) AS ev,
           'the task statement reappears at step(s) ' || array_to_string(list(step ORDER BY step)[1:6], ', ') AS why
    FROM rule_steps WHERE restates_task GROUP BY trace_id
    UNION ALL
    SELECT trace_id, 0.6, list(step ORDER BY step), 'an agent restarts the work at step(s) '
           || array_to_string(list(step ORDER BY step)[1:6], ', ')
    FROM rule_steps WHERE says_restart AND step >= 2 GROUP BY trace_id
)
SELECT trace_id, '2.1' AS mode, max(c) AS confidence,
       list_sort(list_distinct(flatten(list(ev))))[1:20] AS evidence_steps, string_agg(why, '; ' ORDER BY ev, why) AS rationale
FROM hits GROUP BY trace_id
