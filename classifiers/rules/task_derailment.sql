-- mode: 2.3
-- name: task_derailment
-- version: 1
-- description: Late steps drift away from the task: in a trace of 6+ steps, the last
--   third of the substantive steps mentions on average under 10% of the task's
--   distinctive words while the first third mentions at least 30%. Needs a task
--   with 3+ distinctive words; traces without one are not flagged.
WITH s AS (
    SELECT trace_id, step, task_overlap,
           row_number() OVER (PARTITION BY trace_id ORDER BY step) AS i,
           count(*) OVER (PARTITION BY trace_id) AS n
    FROM rule_steps WHERE task_overlap IS NOT NULL AND nbytes >= 20 AND NOT is_exec
),
per AS (
    SELECT trace_id,
           avg(task_overlap) FILTER (WHERE i <= n / 3) AS early,
           avg(task_overlap) FILTER (WHERE i > n - n / 3) AS late,
           list(step ORDER BY step) FILTER (WHERE i > n - n / 3) AS late_steps
    FROM s WHERE n >= 6 GROUP BY trace_id
)
SELECT trace_id, '2.3' AS mode, 0.4 AS confidence, late_steps[1:20] AS evidence_steps,
       'the last third of the steps mentions ' || round(100 * late) || '% of the task''s key words on average, '
       || 'against ' || round(100 * early) || '% in the first third' AS rationale
FROM per WHERE late < 0.1 AND early >= 0.3
