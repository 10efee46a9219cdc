-- mode: 3.3
-- name: incorrect_verification
-- version: 2
-- description: Success is claimed (tests pass, works, verified, task complete,
--   TERMINATE) after an output that shows failure (traceback, failing tests, non-zero
--   exit, error status), with no successful execution in between and no failure
--   mentioned in the claim itself: within two steps (confidence 0.6), or later while
--   the latest execution output is still that failure (confidence 0.45).
WITH ev AS (
    SELECT trace_id, step, is_error, is_exec, (claims_success OR declares_done) AND NOT is_error AS claim,
           is_exec AND NOT is_error AS ok_exec
    FROM rule_steps
    WHERE is_error OR ((claims_success OR declares_done) AND NOT is_exec) OR (is_exec AND NOT is_error)
),
w AS (
    SELECT *,
           max(CASE WHEN is_error THEN step END) OVER (PARTITION BY trace_id ORDER BY step
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS last_err,
           max(CASE WHEN ok_exec THEN step END) OVER (PARTITION BY trace_id ORDER BY step
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS last_ok
    FROM ev
)
SELECT trace_id, '3.3' AS mode, max(CASE WHEN step - last_err <= 2 THEN 0.6 ELSE 0.45 END) AS confidence,
       list_sort(list_distinct(flatten(list([last_err, step]))))[1:20] AS evidence_steps,
       string_agg('success is claimed at step ' || step || CASE WHEN step - last_err <= 2 THEN ' right after' ELSE ' while the latest execution output is' END
                  || ' the failure output at step ' || last_err, '; ' ORDER BY step) AS rationale
FROM w
WHERE claim AND last_err IS NOT NULL AND (last_ok IS NULL OR last_ok < last_err)
GROUP BY trace_id
