-- mode: 3.2
-- name: no_verification
-- version: 1
-- role: signal
-- description: A checkable result (code) is declared final with no verification action
--   (a test run, an execution output, an explicit check) before the declaration; or
--   agents claim test results (counts of passed tests, a pytest summary) in a trace
--   where nothing was ever executed - verification asserted, not done.
WITH per AS (
    SELECT trace_id,
           min(step) FILTER (WHERE has_code) AS first_code,
           min(step) FILTER (WHERE declares_done OR claims_success) AS first_final,
           list(step ORDER BY step) FILTER (WHERE verifies OR is_exec) AS checks,
           list(step ORDER BY step) FILTER (WHERE claims_test_run AND NOT is_exec) AS claimed_runs,
           bool_or(is_exec) AS any_exec
    FROM rule_steps GROUP BY trace_id
),
hits AS (
    SELECT trace_id, 0.5 AS c, [first_code, first_final] AS ev,
           'code from step ' || first_code || ' is declared final at step ' || first_final
           || ' with no verification step before it' AS why
    FROM per
    WHERE first_code IS NOT NULL AND first_final IS NOT NULL AND first_final >= first_code
      AND coalesce(len(list_filter(checks, lambda x: x >= first_code AND x <= first_final)), 0) = 0
    UNION ALL
    SELECT trace_id, 0.6, claimed_runs[1:10],
           'test results are claimed at step(s) ' || array_to_string(claimed_runs[1:6], ', ')
           || ' but nothing in the trace was executed'
    FROM per WHERE NOT any_exec AND len(claimed_runs) > 0
)
SELECT trace_id, '3.2' AS mode, max(c) AS confidence,
       list_sort(list_distinct(flatten(list(ev))))[1:20] AS evidence_steps, string_agg(why, '; ' ORDER BY ev, why) AS rationale
FROM hits GROUP BY trace_id
