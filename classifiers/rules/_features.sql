-- name: _features
-- version: 5
-- description: Shared per-step feature pass: one narrow row of flags per step, which
--   every detector reads (as rule_steps) instead of re-scanning step text. A SELECT over
--   the views feature_steps and feature_traces ("these steps" and their traces): ingest
--   runs it over each batch it stores and keeps the rows in the table
--   rule_step_features; a rules run computes it only for selected traces whose rows are
--   missing or were made by another version of this file (any edit of this file counts).
--   The text pass is ONE regular expression (RE2, a DFA: keep it free of bounded repeats
--   like {0,400}, which blow the DFA up) whose matches are extracted per step; each flag
--   below is then decided on the short matched phrases only. Task-relative features
--   (the task restated, the share of the task's keywords a step mentions) are computed
--   here too, the latter only for each trace's first and last three steps. Output
--   columns are the table's columns: adding or renaming one rebuilds the table.
WITH task AS (
    SELECT trace_id, n_steps,
           left(trim(task), 60) AS head,
           -- up to 12 distinctive task words (5+ letters, not in a small stop list)
           list_distinct(list_filter(string_split_regex(lower(left(task, 2000)), '[^a-z0-9]+'),
               lambda x: strlen(x) >= 5 AND NOT list_contains(['which', 'there', 'their', 'about', 'would', 'should',
                   'could', 'these', 'those', 'where', 'while', 'after', 'before', 'other', 'given', 'using',
                   'following', 'write', 'please', 'answer', 'question', 'provide', 'first', 'being'], x)))[1:12]
               AS kw
    FROM feature_traces
),
w AS (
    SELECT s.trace_id, s.step, s.agent, s.role, s.kind, s.target_agent, s.tool_name, s.tool_args, s.status,
           coalesce(strlen(s.content), 0) AS nbytes,
           -- every phrase any flag looks for, in one pass (case-insensitive)
           coalesce(regexp_extract_all(s.content, '(?i)(?:traceback \(most recent call last\)|exitcode: ?-?[0-9]+|execution (?:failed|succeeded)|[0-9]+ (?:tests? )?(?:failed|passed)|tests? (?:all )?(?:failed|pass(?:ed)?)|command not found|no such file or directory|(?:error|exception): |FAILED|all (?:the )?(?:[0-9]+ )?tests? (?:have )?pass(?:ed)?|works (?:correctly|as expected|perfectly|fine)|(?:has|have) been (?:successfully )?(?:verified|completed|solved|fixed|resolved)|successfully (?:completed|solved|fixed|implemented|verified|executed)|verified (?:that|the|as|it)|(?:is|are) (?:now )?correct|(?:(?:once|when|if|until|after|before|unless) (?:the |this |your |our )?)?["''“]?task (?:is )?(?:now )?(?:completed|complete|finished|done)(?: (?:when|if|once|only|after|before|until|unless))?|problem (?:is )?(?:now )?solved|collected [0-9]+ items?|ran [0-9]+ tests?|OK \([0-9]+ tests?\)|(?:(?:reply|respond|say|write|type|output|return|answer|with)(?: only)?(?: with)? )?["''“`]?TERMINATE|final answer(?: is|\**\s*:)|we are (?:all )?done|no further (?:action|steps|work)|is_request_satisfied":\s*\{[^}]*"answer":\s*true|is_in_loop":\s*\{[^}]*"answer":\s*true|max(?:imum)?[ _-]?(?:number of )?(?:turns?|rounds?|iterations?|steps|consecutive[ _]auto[ _]reply)[^.\n]*(?:reached|exceeded|hit)|(?:reached|exceeded|hit) (?:the )?(?:max(?:imum)?|turn|round|recursion|iteration|step)[ _-]?(?:limit|number of|turns?|rounds?)|recursion limit|graphrecursionerror|too many (?:turns|rounds|iterations)|(?:ran|run|running|rerun|re-ran|execut(?:e|ed|ing)) (?:the |all |these |our )?(?:unit )?tests?|pytest|unittest|verif(?:y|ied|ying|ication)|double[- ]check|sanity[- ]check|cross[- ]check|validat(?:e|ed|ing|ion)|test(?:ed|ing) (?:it|the|this|with|against)|```|\n(?:def|class|import|from [a-z_.]+ import) |let''?s (?:start|begin) (?:over|again|from scratch)|start(?:ing)? (?:over|from scratch)|restart(?:ing)? (?:the )?(?:task|conversation|process|from)|reset(?:ting)? (?:the )?(?:conversation|context|task)|from the very beginning|as (?:i|we) (?:already |have )?(?:mentioned|said|stated|explained|noted|discussed) (?:earlier|before|previously|above)|(?:i|we) (?:have )?already (?:answered|provided|explained|told|shared|gave|given|asked)|as previously (?:mentioned|stated|discussed|noted)|you (?:already )?asked (?:this|that)|repeat(?:ing)? (?:myself|again)|lost (?:track|context)|no longer (?:have|remember)|(?:forgot|forgotten) (?:the|about|what)|next speaker:?\s*\**[a-z_][a-z0-9_-]*|(?:i will|i''ll|let me|now i will) (?:now )?(?:call|use|invoke|run) (?:the )?`?[a-z_][a-z0-9_.]*`? (?:tool|function))'), []) AS m,
           -- coalesce: a step without text or role (a tool call) is not an execution output;
           -- NULL here made "blame the step that asked for the execution" skip tool calls
           coalesce(s.kind IN ('tool_result', 'error') OR s.role = 'tool' OR starts_with(s.content, 'exitcode:'),
                    false) AS is_exec,
           regexp_matches(s.content, '\?\s*$') AS ends_question,
           -- fingerprint for "near-identical": case-insensitive first 256 characters and the length in 64-byte buckets
           CASE WHEN strlen(s.content) >= 24 THEN hash(lower(left(s.content, 256)), strlen(s.content) // 64) END AS fp,
           (s.step >= 2 AND strlen(k.head) >= 40 AND contains(left(s.content, 2000), k.head)) AS restates_task,
           k.kw,
           CASE WHEN len(k.kw) >= 3 AND (s.step <= 3 OR s.step >= k.n_steps - 3) THEN lower(left(s.content, 1500)) END AS lc,
    FROM feature_steps s LEFT JOIN task k USING (trace_id)
),
f AS (
    SELECT *, list_transform(m, lambda x: lower(x)) AS ml,
           -- an announced next speaker (Magentic-One "Next speaker X", group chat managers)
           nullif(regexp_extract(list_extract(list_filter(m, lambda x: regexp_matches(x, '(?i)^next speaker')), 1),
                                 '(?i)next speaker:?\s*\**([A-Za-z_][A-Za-z0-9_-]*)', 1), '') AS announced_speaker,
           -- an announced tool call ("I will call `search` tool")
           nullif(regexp_extract(list_extract(list_filter(m, lambda x: regexp_matches(x, '(?i)(tool|function)$')), 1),
                                 '(?i)(?:call|use|invoke|run) (?:the )?`?([A-Za-z_][A-Za-z0-9_.]*)`? (?:tool|function)$', 1), '')
               AS announced_tool,
           CASE WHEN lc IS NOT NULL THEN len(list_filter(kw, lambda x: contains(lc, x)))::DOUBLE / len(kw) END AS task_overlap
    FROM w
)
SELECT
    trace_id, step, agent, role, kind, target_agent, tool_name, nbytes, is_exec, ends_question, fp,
    restates_task, task_overlap, announced_speaker, announced_tool,
    CASE WHEN tool_name IS NOT NULL THEN hash(tool_name, coalesce(tool_args, '')) END AS call_hash,
    -- the output shows a failure: traceback, non-zero exit, failing tests, an error class
    (kind = 'error' OR lower(coalesce(status, '')) IN ('error', 'failed', 'failure') OR list_contains(m, 'FAILED')
     OR len(list_filter(ml, lambda x: regexp_matches(x, '^(traceback|exitcode: ?-?[1-9]|execution failed|[1-9][0-9]* (tests? )?failed|tests? failed|command not found|no such file|error: |exception: )'))) > 0)
        AS is_error,
    -- an agent claims success or correctness
    (NOT is_exec AND len(list_filter(ml, lambda x: regexp_matches(x, '^(all (the )?([0-9]+ )?tests? (have )?pass|tests? (all )?pass|[0-9]+ passed|works |(has|have) been|successfully |verified (that|the|as|it)|(is|are) (now )?correct|task |problem )')
                                                 AND NOT regexp_matches(x, ' (when|if|once|only|after|before|until|unless)$'))) > 0)
        AS claims_success,
    -- a claim of having run tests (counts of passed tests, a pytest/unittest summary)
    len(list_filter(ml, lambda x: regexp_matches(x, '^([0-9]+ passed|all ([0-9]+ )?tests? passed|collected |ran [0-9]|ok \()'))) > 0
        AS claims_test_run,
    -- the task is declared finished or a final answer is given.  Mentions are not
    -- declarations: the regex keeps what makes one an instruction or a condition inside
    -- the match (an opening quote, "reply ... TERMINATE", "once the task is done",
    -- "task complete when"), so those matches do not start with the phrase itself or end
    -- in a condition; "final answer" counts only as "final answer:" / "final answer is"
    -- (planning text such as "provide the final answer using the final_answer tool" is
    -- not the answer).
    (list_contains(m, 'TERMINATE') OR len(list_filter(ml, lambda x: regexp_matches(x, '^(task (is )?(now )?(complete|completed|finished|done)|final answer|we are |no further|is_request_satisfied)')
                                                                  AND NOT regexp_matches(x, ' (when|if|once|only|after|before|until|unless)$'))) > 0)
        AS declares_done,
    -- a turn / round / recursion / iteration limit was reached
    len(list_filter(ml, lambda x: regexp_matches(x, '^(max|reached|exceeded|hit |recursion limit|graphrecursionerror|too many)'))) > 0
        AS hits_limit,
    -- a verification action: checking, testing, validating (said or done)
    (starts_with(coalesce(list_extract(ml, 1), ''), 'exitcode: 0') OR
     len(list_filter(ml, lambda x: regexp_matches(x, '^(ran |run|rerun|re-ran|execut|pytest|unittest|verif|double|sanity|cross|validat|test(ed|ing) )'))) > 0)
        AS verifies,
    -- a checkable result: code
    len(list_filter(ml, lambda x: x = '```' OR regexp_matches(x, '^\n(def|class|import|from) '))) > 0 AS has_code,
    -- explicit restart of the work
    len(list_filter(ml, lambda x: regexp_matches(x, '^(let|start|restart|reset|from the very)'))) > 0 AS says_restart,
    -- someone notes that something was already said or done
    len(list_filter(ml, lambda x: regexp_matches(x, '^(as (i|we)|(i|we) (have )?already|as previously|you (already )?asked|repeat|lost |no longer|forgot)'))) > 0
        AS notes_repeat,
    -- the agent's own loop report (Magentic-One's ledger)
    len(list_filter(ml, lambda x: starts_with(x, 'is_in_loop'))) > 0 AS reports_loop
FROM f
