-- mode: 2.6
-- name: reasoning_action_mismatch
-- version: 1
-- role: signal
-- description: The announced action differs from the executed one: a step announces
--   the next speaker ("Next speaker X") but the following step is by another agent; or
--   an agent says it will call tool X and its next tool call is a different tool.
WITH ann AS (
    SELECT trace_id, step, agent, announced_speaker FROM rule_steps WHERE announced_speaker IS NOT NULL
),
spk AS (
    SELECT a.trace_id, a.step, r.step AS next_step, a.announced_speaker, r.agent AS actual
    FROM ann a JOIN rule_steps r ON r.trace_id = a.trace_id AND r.step = a.step + 1
    WHERE r.agent IS NOT NULL AND r.agent IS DISTINCT FROM a.agent
      AND regexp_replace(lower(r.agent), '[^a-z0-9]', '', 'g') <> regexp_replace(lower(a.announced_speaker), '[^a-z0-9]', '', 'g')
),
tann AS (
    SELECT trace_id, step, agent, announced_tool FROM rule_steps WHERE announced_tool IS NOT NULL
),
calls AS (
    SELECT trace_id, step, agent, tool_name FROM rule_steps WHERE kind = 'tool_call' AND tool_name IS NOT NULL
),
tool AS (
    SELECT t.trace_id, t.step, t.announced_tool, arg_min(c.tool_name, c.step) AS actual, min(c.step) AS next_step
    FROM tann t JOIN calls c ON c.trace_id = t.trace_id AND c.step > t.step AND c.agent IS NOT DISTINCT FROM t.agent
    GROUP BY t.trace_id, t.step, t.announced_tool
),
hits AS (
    SELECT trace_id, step, next_step, 'announced ' || announced_speaker || ' as next speaker at step ' || step
           || ' but ' || actual || ' acted at step ' || next_step AS why FROM spk
    UNION ALL
    SELECT trace_id, step, next_step, 'announced tool ' || announced_tool || ' at step ' || step
           || ' but called ' || actual || ' at step ' || next_step FROM tool
    WHERE lower(actual) <> lower(announced_tool) AND NOT ends_with(lower(actual), '.' || lower(announced_tool))
)
SELECT trace_id, '2.6' AS mode, 0.5 AS confidence,
       list_sort(list_distinct(flatten(list([step, next_step]))))[1:20] AS evidence_steps,
       string_agg(why, '; ' ORDER BY step, next_step, why) AS rationale
FROM hits GROUP BY trace_id
