-- mode: DS6
-- name: non_idempotent_retry
-- version: 1
-- role: signal
-- description: A side-effecting tool call (its name starts with a verb that changes the
--   world - post, put, patch, delete, create, insert, update, write, send, submit, book,
--   pay, charge, order, transfer, upload, add, remove, cancel, save, publish, commit,
--   deploy, refund, reserve, exchange, modify - or its arguments say HTTP method POST,
--   PUT, PATCH or DELETE), a failed step after it, then the same tool called again with
--   identical arguments (same call hash as the feature pass's).
--   Evidence: the first call, the first failure after it, the repeated call.
WITH calls AS (
    SELECT r.trace_id, r.step, r.agent, r.tool_name, r.call_hash
    FROM rule_steps r JOIN sel_steps s ON s.trace_id = r.trace_id AND s.step = r.step
    WHERE r.kind = 'tool_call' AND r.call_hash IS NOT NULL
      AND (regexp_matches(r.tool_name, '(?i)^(http_|api_)?(post|put|patch|delete|create|insert|update|write|send|submit|book|pay|charge|order|transfer|upload|add|remove|cancel|save|publish|commit|deploy|refund|reserve|exchange|modify)')
           OR regexp_matches(coalesce(s.tool_args, ''), '(?i)"method"\s*:\s*"(post|put|patch|delete)"'))
),
pairs AS (
    SELECT a.trace_id, a.step AS first, min(b.step) AS again, any_value(a.tool_name) AS tool, any_value(a.agent) AS agent
    FROM calls a JOIN calls b ON b.trace_id = a.trace_id AND b.call_hash = a.call_hash AND b.step > a.step
    GROUP BY a.trace_id, a.step
),
failed AS (
    SELECT p.*, (SELECT min(e.step) FROM rule_steps e
                 WHERE e.trace_id = p.trace_id AND e.step > p.first AND e.step < p.again AND e.is_error) AS fail
    FROM pairs p
)
SELECT trace_id, 'DS6' AS mode, 0.7 AS confidence,
       list_sort(list_distinct(flatten(list([first, fail, again]))))[1:20] AS evidence_steps,
       string_agg(coalesce(agent, '(unnamed agent)') || ' called ' || tool || ' again with the same arguments at step '
                  || again || ' after it failed (call at step ' || first || ', failure at step ' || fail || ')', '; '
                  ORDER BY first) AS rationale
FROM failed WHERE fail IS NOT NULL
GROUP BY trace_id
