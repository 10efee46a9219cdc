-- mode: 1.4
-- name: history_loss
-- version: 1
-- role: signal
-- description: Re-asking or redoing what was already answered: an agent notes that
--   something was already said or done ("as I mentioned earlier", "I already
--   provided"), or the same question (same fingerprint) is asked again after at
--   least one other step answered in between.
WITH q AS (
    SELECT trace_id, list(step ORDER BY step) AS steps
    FROM rule_steps WHERE ends_question AND fp IS NOT NULL AND NOT is_exec
    GROUP BY trace_id, fp HAVING count(*) >= 2 AND max(step) - min(step) >= 2
),
hits AS (
    SELECT trace_id, 0.45 AS c, steps AS ev,
           'the same question is asked again at steps ' || array_to_string(steps[1:6], ', ') AS why FROM q
    UNION ALL
    SELECT trace_id, 0.5, list(step ORDER BY step),
           'an agent points out that something was already said or done (step(s) '
           || array_to_string(list(step ORDER BY step)[1:6], ', ') || ')'
    FROM rule_steps WHERE notes_repeat AND step >= 2 GROUP BY trace_id
)
SELECT trace_id, '1.4' AS mode, max(c) AS confidence,
       list_sort(list_distinct(flatten(list(ev))))[1:20] AS evidence_steps, string_agg(why, '; ' ORDER BY ev, why) AS rationale
FROM hits GROUP BY trace_id
