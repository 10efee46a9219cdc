-- mode: 3.1
-- name: premature_termination
-- version: 1
-- role: signal
-- description: The trace ends too early: its last step is a tool call that was never
--   answered, an open question, a failure output (traceback, non-zero exit, error),
--   or the last substantive step is followed only by empty steps while a limit was
--   not the reason. Traces with no steps are not assessed as positive.
WITH last AS (
    SELECT trace_id, max(step) AS s FROM rule_steps GROUP BY trace_id
),
l AS (
    SELECT r.* FROM rule_steps r JOIN last USING (trace_id) WHERE r.step = last.s
)
SELECT trace_id, '3.1' AS mode,
       CASE WHEN kind = 'tool_call' THEN 0.7 WHEN is_error THEN 0.6 ELSE 0.45 END AS confidence,
       [step] AS evidence_steps,
       'the trace ends at step ' || step || ' with ' ||
       CASE WHEN kind = 'tool_call' THEN 'an unanswered tool call' || coalesce(' (' || tool_name || ')', '')
            WHEN is_error THEN 'a failure output'
            ELSE 'an open question' END AS rationale
FROM l
WHERE kind = 'tool_call' OR is_error OR (ends_question AND NOT declares_done)
