-- mode: DS5
-- name: unhandled_partial_failure
-- version: 1
-- role: signal
-- description: A failed step (an error kind or status, a traceback, a failing run) is
--   followed by a claim of success or a final answer, and between the two nothing ran
--   again successfully (no successful output of the same tool, or of anything when the
--   failure names no tool): the team finished as if the failure had not happened.
--   Evidence: the failed step and the first claim after it.
WITH err AS (
    SELECT trace_id, step AS e, tool_name FROM rule_steps WHERE is_error
),
pairs AS (
    SELECT f.trace_id, f.e, min(c.step) AS claim
    FROM err f JOIN rule_steps c ON c.trace_id = f.trace_id AND c.step > f.e
    WHERE (c.claims_success OR c.declares_done) AND NOT c.is_exec AND NOT c.is_error
    GROUP BY f.trace_id, f.e, f.tool_name
),
unhandled AS (
    SELECT p.* FROM pairs p JOIN err f ON f.trace_id = p.trace_id AND f.e = p.e
    WHERE NOT EXISTS (SELECT 1 FROM rule_steps ok
                      WHERE ok.trace_id = p.trace_id AND ok.step > p.e AND ok.step < p.claim
                        AND ok.is_exec AND NOT ok.is_error
                        AND (f.tool_name IS NULL OR ok.tool_name = f.tool_name))
)
SELECT trace_id, 'DS5' AS mode, 0.6 AS confidence,
       [min(e), arg_min(claim, e)] AS evidence_steps,
       'step ' || min(e) || ' failed and step ' || arg_min(claim, e)
       || ' claims success or gives the final answer with no successful retry in between' AS rationale
FROM unhandled
GROUP BY trace_id
