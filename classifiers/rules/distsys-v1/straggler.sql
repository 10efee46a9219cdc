-- mode: DS4
-- name: straggler
-- version: 1
-- role: signal
-- description: A parallel phase is the sibling steps under one parent span that belong
--   to at least two agents (a handoff counts for the agent it hands to) and overlap in
--   time. The phase has a straggler when one agent's work there lasts at least 1 second
--   and at least three times as long as the next agent's, and overlaps another agent's:
--   the team waited for its slowest worker. Needs span parents and timestamps; traces
--   without them are never flagged.
--   Evidence: the slowest agent's steps of that phase, then the others', at most 20.
WITH sib AS (
    SELECT s.trace_id, s.parent_span_id AS phase, s.step,
           CASE WHEN r.kind = 'handoff' AND r.target_agent IS NOT NULL THEN r.target_agent ELSE r.agent END AS worker,
           s.started_at AS t0, coalesce(s.ended_at, s.started_at) AS t1
    FROM sel_steps s JOIN rule_steps r ON r.trace_id = s.trace_id AND r.step = s.step
    WHERE s.parent_span_id IS NOT NULL AND s.started_at IS NOT NULL AND s.ended_at >= s.started_at
),
per AS (
    SELECT trace_id, phase, worker, min(t0) AS t0, max(t1) AS t1,
           epoch(max(t1) - min(t0)) AS secs, list(step ORDER BY step) AS steps
    FROM sib WHERE worker IS NOT NULL
    GROUP BY trace_id, phase, worker
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY trace_id, phase ORDER BY secs DESC, worker) AS rk,
           count(*) OVER (PARTITION BY trace_id, phase) AS workers
    FROM per
),
phase AS (
    SELECT s.trace_id, s.phase, s.worker, s.secs, s.steps, n.secs AS next_secs, s.workers,
           (SELECT list(o.steps) FROM ranked o WHERE o.trace_id = s.trace_id AND o.phase = s.phase AND o.rk > 1) AS others,
           (SELECT count(*) FROM ranked o WHERE o.trace_id = s.trace_id AND o.phase = s.phase AND o.rk > 1
                AND o.t0 < s.t1 AND o.t1 > s.t0) AS overlapping
    FROM ranked s JOIN ranked n ON n.trace_id = s.trace_id AND n.phase = s.phase AND n.rk = 2
    WHERE s.rk = 1
)
SELECT trace_id, 'DS4' AS mode, least(0.9, 0.5 + 0.05 * max(secs / greatest(next_secs, 0.001))) AS confidence,
       arg_max(steps || flatten(others), secs / greatest(next_secs, 0.001))[1:20] AS evidence_steps,
       string_agg(worker || ' took ' || round(secs, 1) || ' s while the next slowest of ' || workers
                  || ' parallel agents took ' || round(next_secs, 1) || ' s', '; ' ORDER BY worker) AS rationale
FROM phase
WHERE overlapping >= 1 AND secs >= 1 AND secs >= 3 * next_secs
GROUP BY trace_id
