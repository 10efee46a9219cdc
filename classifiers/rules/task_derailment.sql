-- mode: 2.3
-- name: task_derailment
-- version: 2
-- role: signal
-- description: Late steps drift away from the task: in a trace of 8+ steps, the last
--   three substantive steps mention on average under 10% of the task's distinctive
--   words while steps 1-3 mention at least 30%. Needs a task with 3+ distinctive
--   words (see _features); traces without one are not flagged.
WITH s AS (
    SELECT r.trace_id, r.step, r.task_overlap, t.n_steps
    FROM rule_steps r JOIN sel_traces t USING (trace_id)
    WHERE r.task_overlap IS NOT NULL AND r.nbytes >= 20 AND NOT r.is_exec AND t.n_steps >= 8
),
per AS (
    SELECT trace_id,
           avg(task_overlap) FILTER (WHERE step BETWEEN 1 AND 3) AS early,
           avg(task_overlap) FILTER (WHERE step >= n_steps - 3) AS late,
           list(step ORDER BY step) FILTER (WHERE step >= n_steps - 3) AS late_steps
    FROM s GROUP BY trace_id
)
SELECT trace_id, '2.3' AS mode, 0.4 AS confidence, late_steps AS evidence_steps,
       'the last steps mention ' || round(100 * late) || '% of the task''s key words on average, '
       || 'against ' || round(100 * early) || '% in steps 1-3' AS rationale
FROM per WHERE late < 0.1 AND early >= 0.3
