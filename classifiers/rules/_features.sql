-- name: _features
-- version: 1
-- description: Shared per-step feature pass. Every detector reads the narrow table
--   rule_steps built here instead of re-scanning step text, so the whole rule set costs
--   one pass over the text plus small queries. Flags are regular expressions (RE2) over
--   a bounded window of each step's text: steps over 32 KB are read as their first and
--   last 16 KB, so one huge step cannot dominate a run (evidence near the middle of a
--   huge step is not seen). Inputs: the views sel_steps and sel_traces (the selected
--   traces). Task-relative features (the task restated, the share of the task's
--   keywords a step mentions) are computed here too, so no detector re-reads text.
CREATE OR REPLACE TEMP TABLE rule_steps AS
WITH task AS (
    SELECT trace_id,
           left(trim(task), 60) AS head,
           -- up to 12 distinctive task words (5+ letters, not in a small stop list)
           list_distinct(list_filter(string_split_regex(lower(left(task, 2000)), '[^a-z0-9]+'),
               lambda x: strlen(x) >= 5 AND NOT list_contains(['which', 'there', 'their', 'about', 'would', 'should',
                   'could', 'these', 'those', 'where', 'while', 'after', 'before', 'other', 'given', 'using',
                   'following', 'write', 'please', 'task', 'answer', 'question', 'provide', 'first', 'being'], x)))[1:12]
               AS kw
    FROM sel_traces
),
w AS (
    SELECT s.trace_id, s.step, s.agent, s.role, s.kind, s.target_agent, s.tool_name, s.tool_args, s.status,
           coalesce(strlen(s.content), 0) AS nbytes,
           CASE WHEN strlen(s.content) > 32768 THEN left(s.content, 16384) || ' [...] ' || right(s.content, 16384)
                ELSE coalesce(s.content, '') END AS txt,
           -- the task statement reappears near the top of a later step
           (s.step >= 2 AND strlen(k.head) >= 40 AND contains(left(s.content, 2000), k.head)) AS restates_task,
           CASE WHEN len(k.kw) >= 3 THEN
               len(list_filter(k.kw, lambda x: contains(lower(left(s.content, 1500)), x)))::DOUBLE / len(k.kw)
           END AS task_overlap
    FROM sel_steps s LEFT JOIN task k USING (trace_id)
)
SELECT
    trace_id, step, agent, role, kind, target_agent, tool_name, nbytes, restates_task, task_overlap,
    CASE WHEN tool_name IS NOT NULL THEN hash(tool_name, coalesce(tool_args, '')) END AS call_hash,
    -- Fingerprint for "near-identical" content: case, digits, whitespace and
    -- punctuation are ignored; the first 600 characters decide.
    CASE WHEN strlen(fp_text) >= 24 THEN hash(fp_text) END AS fp,
    -- the step is an execution or tool output (not an agent's own words)
    (kind IN ('tool_result', 'error') OR role = 'tool' OR starts_with(ltrim(txt), 'exitcode:')) AS is_exec,
    -- the output shows a failure: traceback, non-zero exit, failing tests, an error class
    (kind = 'error' OR lower(coalesce(status, '')) IN ('error', 'failed', 'failure')
     OR regexp_matches(txt, '(?i:traceback \(most recent call last\)|exitcode: [1-9]|execution failed|\b[1-9][0-9]* (tests? )?failed\b|tests? failed|command not found|no such file or directory)|\b[A-Z][A-Za-z]*(Error|Exception): |\bFAILED\b')
    ) AS is_error,
    -- an agent claims success or correctness
    (NOT (kind IN ('tool_result', 'error') OR role = 'tool' OR starts_with(ltrim(txt), 'exitcode:'))
     AND regexp_matches(txt, '(?i)\b(all (the )?([0-9]+ )?tests? (have )?pass(ed)?|tests? (all )?pass(ed)?\b|[0-9]+ passed\b|works (correctly|as expected|perfectly|fine)|(has|have) been (successfully )?(verified|completed|solved|fixed|resolved)|successfully (completed|solved|fixed|implemented|verified|executed)|verified (that|the|as|it)|(is|are) (now )?correct\b|task (is )?(now )?(complete|completed|done|solved)\b|problem (is )?(now )?solved)')
    ) AS claims_success,
    -- a claim of having run tests (counts of passed tests, a pytest/unittest summary)
    regexp_matches(txt, '(?i)(\b[0-9]+ passed\b|all ([0-9]+ )?tests? passed|collected [0-9]+ items?|\bran [0-9]+ tests?\b|\bOK \([0-9]+ tests?\))') AS claims_test_run,
    -- the task is declared finished or a final answer is given
    regexp_matches(txt, '(?i)(\bTERMINATE\b|task (is )?(now )?(complete|completed|finished|done)\b|\bfinal answer\b|\bwe are (all )?done\b|\bno further (action|steps|work) (is )?(needed|required)|"is_request_satisfied":\s*\{[^}]*"answer":\s*true)') AS declares_done,
    -- a turn / round / recursion / iteration limit was reached
    regexp_matches(txt, '(?i)(max(imum)?[ _-]?(turns?|rounds?|iterations?|steps|consecutive[ _]auto[ _]reply)\b[^.\n]{0,40}\b(reached|exceeded|hit)\b|(reached|exceeded|hit) (the )?(max(imum)?|turn|round|recursion|iteration|step)[ _-]?(limit|number of (turns|rounds|iterations|steps)|turns?|rounds?)|recursion limit|graphrecursionerror|too many (turns|rounds|iterations))') AS hits_limit,
    -- a verification action: checking, testing, validating (said or done)
    (starts_with(ltrim(txt), 'exitcode: 0')
     OR regexp_matches(txt, '(?i)(\b(ran|run|running|rerun|re-ran|execut(e|ed|ing)) (the |all |these |our )?(unit )?tests?\b|\bpytest\b|\bunittest\b|\bverif(y|ied|ying|ication)\b|double[- ]check|sanity[- ]check|cross[- ]check|\bvalidat(e|ed|ing|ion)\b|\btest(ed|ing) (it|the|this|with|against)\b)')
    ) AS verifies,
    -- a checkable result: code or a concrete answer
    (position('```' IN txt) > 0 OR regexp_matches(txt, '(?m)^\s*(def|class|import|from [A-Za-z_.]+ import) ')) AS has_code,
    -- ends with an open question to someone
    ends_with(rtrim(txt), '?') AS ends_question,
    -- explicit restart of the work
    regexp_matches(txt, '(?i)(let''?s (start|begin) (over|again|from scratch)|start(ing)? (over|from scratch)|restart(ing)? (the )?(task|conversation|process|from)|reset(ting)? (the )?(conversation|context|task)|from the very beginning)') AS says_restart,
    -- someone notes that something was already said or done
    regexp_matches(txt, '(?i)(as (i|we) (already |have )?(mentioned|said|stated|explained|noted|discussed) (earlier|before|previously|above)|\b(i|we) (have )?already (answered|provided|explained|told|shared|gave|given|asked)|as previously (mentioned|stated|discussed|noted)|you (already )?asked (this|that)|\brepeat(ing)? (myself|again)\b|lost (track|context)|no longer (have|remember)|(forgot|forgotten) (the|about|what))') AS notes_repeat,
    -- the agent's own loop report (Magentic-One's ledger)
    regexp_matches(txt, '"is_in_loop":\s*\{[^}]*"answer":\s*true') AS reports_loop,
    -- an announced next speaker (Magentic-One "Next speaker X", group chat managers)
    nullif(regexp_extract(left(txt, 400), '(?i)next speaker:?\s*\**([A-Za-z_][A-Za-z0-9_-]*)', 1), '') AS announced_speaker,
    -- an announced tool call ("I will call `search`")
    nullif(regexp_extract(left(txt, 2000), '(?i)\b(?:i will|i''ll|let me|next,? i will|now i will) (?:now )?(?:call|use|invoke|run) (?:the )?`?([A-Za-z_][A-Za-z0-9_.]*)`? (?:tool|function)', 1), '') AS announced_tool
FROM (SELECT *, regexp_replace(lower(left(txt, 600)), '[\s\d[:punct:]]+', '', 'g') AS fp_text FROM w)
