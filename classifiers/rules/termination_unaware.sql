-- mode: 1.5
-- name: termination_unaware
-- version: 1
-- role: signal
-- description: A turn, round, recursion or iteration limit was hit (the agents did not
--   stop by themselves), or the conversation goes on for two or more substantive steps
--   after the task was declared done (TERMINATE, "task complete", final answer,
--   a ledger saying the request is satisfied).
WITH lim AS (
    SELECT trace_id, min(step) AS s FROM rule_steps WHERE hits_limit GROUP BY trace_id
),
done AS (
    SELECT trace_id, min(step) AS s FROM rule_steps WHERE declares_done GROUP BY trace_id
),
after AS (
    SELECT d.trace_id, d.s, list(r.step ORDER BY r.step) AS later
    FROM done d JOIN rule_steps r ON r.trace_id = d.trace_id AND r.step > d.s AND r.nbytes >= 20
    GROUP BY d.trace_id, d.s HAVING count(*) >= 2
),
hits AS (
    SELECT trace_id, 0.7 AS c, [s] AS ev, 'a turn/round/recursion limit was reached (step ' || s || ')' AS why FROM lim
    UNION ALL
    SELECT trace_id, 0.5, [s] || later[1:3], 'the task was declared done at step ' || s || ' but ' || len(later)
           || ' more substantive step(s) followed' FROM after
)
SELECT trace_id, '1.5' AS mode, max(c) AS confidence,
       list_sort(list_distinct(flatten(list(ev)))) AS evidence_steps, string_agg(why, '; ' ORDER BY ev, why) AS rationale
FROM hits GROUP BY trace_id
