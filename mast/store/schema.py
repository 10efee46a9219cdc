"""The store's schema as an ordered list of named migrations.

Every write-mode open applies the migrations not yet recorded in ``_migrations`` (the
pattern of simonw/llm's ``migrations.py``).  Never edit a migration that has shipped:
append a new one.  Field meanings are documented in DESIGN.md.
"""

from __future__ import annotations

from typing import Callable

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_core_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE traces (
            trace_id       VARCHAR PRIMARY KEY,  -- tagged content hash, e.g. t1-<32 hex>
            system         VARCHAR,              -- the multi-agent system's name
            framework      VARCHAR,
            source_format  VARCHAR NOT NULL,     -- importer name
            source_path    VARCHAR NOT NULL,
            source_index   INTEGER NOT NULL,     -- record index inside the file
            task           VARCHAR,
            outcome        VARCHAR NOT NULL,     -- success / failure / unknown
            started_at     TIMESTAMP,            -- UTC
            ended_at       TIMESTAMP,
            n_steps        INTEGER NOT NULL,
            n_agents       INTEGER NOT NULL,
            tokens_in      BIGINT,
            tokens_out     BIGINT,
            cost_usd       DOUBLE,
            metadata       JSON,
            schema_version INTEGER NOT NULL,
            ingested_at    TIMESTAMP NOT NULL
        )
        """
    )
    # No primary key on steps: an index over 20M rows costs more at ingest than it
    # saves; (trace_id, step) is unique by construction (one writer per trace).
    con.execute(
        """
        CREATE TABLE steps (
            trace_id       VARCHAR NOT NULL,
            step           INTEGER NOT NULL,     -- 0-based order within the trace
            span_id        VARCHAR,
            parent_span_id VARCHAR,
            agent          VARCHAR,
            role           VARCHAR,              -- system / user / assistant / tool
            kind           VARCHAR NOT NULL,     -- see mast.model.StepKind
            content        VARCHAR,
            tool_name      VARCHAR,
            tool_args      VARCHAR,
            target_agent   VARCHAR,
            started_at     TIMESTAMP,
            ended_at       TIMESTAMP,
            tokens_in      BIGINT,
            tokens_out     BIGINT,
            cost_usd       DOUBLE,
            status         VARCHAR,
            attributes     JSON
        )
        """
    )
    con.execute(
        """
        CREATE TABLE runs (
            run_id        VARCHAR PRIMARY KEY,
            classifier    VARCHAR NOT NULL,
            version       VARCHAR NOT NULL,
            arguments     JSON,
            taxonomy      VARCHAR,
            model         VARCHAR,
            started_at    TIMESTAMP NOT NULL,
            finished_at   TIMESTAMP,
            traces_done   INTEGER DEFAULT 0,
            traces_failed INTEGER DEFAULT 0,
            tokens_in     BIGINT DEFAULT 0,
            tokens_out    BIGINT DEFAULT 0,
            cost_usd      DOUBLE DEFAULT 0,
            status        VARCHAR               -- running / finished / failed / stopped
        )
        """
    )
    con.execute(
        """
        CREATE TABLE annotations (
            trace_id       VARCHAR NOT NULL,
            taxonomy       VARCHAR NOT NULL,
            mode           VARCHAR NOT NULL,
            annotator      VARCHAR NOT NULL,     -- e.g. human:annotator_1, rules, judge:gpt-4o
            run_id         VARCHAR,
            label          VARCHAR NOT NULL,     -- present / absent / unknown
            confidence     DOUBLE,
            evidence_steps INTEGER[],
            rationale      VARCHAR,
            created_at     TIMESTAMP NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE attributions (
            trace_id   VARCHAR NOT NULL,
            annotator  VARCHAR NOT NULL,
            run_id     VARCHAR,
            agent      VARCHAR,
            step       INTEGER,
            confidence DOUBLE,
            rationale  VARCHAR,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    # One row per file fully ingested: a rerun skips files that have not changed.
    con.execute(
        """
        CREATE TABLE ingested_files (
            path           VARCHAR NOT NULL,
            size           BIGINT NOT NULL,
            mtime_ns       BIGINT NOT NULL,
            source_format  VARCHAR NOT NULL,
            traces         INTEGER NOT NULL,
            ingested_at    TIMESTAMP NOT NULL
        )
        """
    )


@migration
def m010_judge_tables(con: duckdb.DuckDBPyConnection) -> None:
    # The LLM judge's own records (mast.classify.judge).  judge_cache makes a rerun free:
    # one row per (trace content, prompt version, taxonomy version, model, parameters).
    con.execute(
        """
        CREATE TABLE judge_cache (
            key            VARCHAR PRIMARY KEY,  -- sha256 over the fields below + rendered input
            trace_id       VARCHAR NOT NULL,
            model          VARCHAR NOT NULL,
            prompt_version VARCHAR NOT NULL,
            taxonomy       VARCHAR NOT NULL,     -- id@version
            params         JSON,
            result         JSON NOT NULL,        -- validated, merged verdicts
            coverage       JSON,                 -- how much of the trace the judge saw
            tokens_in      BIGINT,
            tokens_out     BIGINT,
            cost_usd       DOUBLE,               -- NULL when the model has no price
            created_at     TIMESTAMP NOT NULL
        )
        """
    )
    # A trace the judge could not classify: the reason, the prompt and the reply, never a label.
    con.execute(
        """
        CREATE TABLE judge_failures (
            trace_id       VARCHAR NOT NULL,
            session        VARCHAR,              -- one classify() call
            model          VARCHAR,
            prompt_version VARCHAR,
            kind           VARCHAR NOT NULL,     -- unclassified / call_failed
            reason         VARCHAR NOT NULL,
            prompt         JSON,                 -- the messages sent
            reply          VARCHAR,              -- the raw reply text, when there was one
            created_at     TIMESTAMP NOT NULL
        )
        """
    )
    # Batch API jobs, so a killed --batch run resumes by batch id instead of paying twice.
    con.execute(
        """
        CREATE TABLE judge_batches (
            batch_id       VARCHAR PRIMARY KEY,
            input_file_id  VARCHAR,
            model          VARCHAR NOT NULL,
            prompt_version VARCHAR NOT NULL,
            requests       JSON NOT NULL,        -- custom_id -> {trace_id, window, key}
            status         VARCHAR NOT NULL,     -- the API's status; 'stored' once results are in the store
            created_at     TIMESTAMP NOT NULL,
            finished_at    TIMESTAMP
        )
        """
    )


@migration
def m020_rule_step_features(con: duckdb.DuckDBPyConnection) -> None:
    # The rules' per-step features (classifiers/rules/_features.sql), computed when steps
    # are stored so a rules run reads this narrow table instead of scanning the step text.
    # The columns are those _features.sql outputs; the rules runner rebuilds the table
    # when that file's output columns change.  rule_feature_traces says which traces have
    # rows and from which version of _features.sql ("<header version>.<digest>"): a rules
    # run recomputes traces that are missing or of another version.
    con.execute(
        """
        CREATE TABLE rule_step_features (
            trace_id VARCHAR, step INTEGER, agent VARCHAR, role VARCHAR, kind VARCHAR,
            target_agent VARCHAR, tool_name VARCHAR, nbytes BIGINT, is_exec BOOLEAN,
            ends_question BOOLEAN, fp UBIGINT, restates_task BOOLEAN, task_overlap DOUBLE,
            announced_speaker VARCHAR, announced_tool VARCHAR, call_hash UBIGINT,
            is_error BOOLEAN, claims_success BOOLEAN, claims_test_run BOOLEAN,
            declares_done BOOLEAN, hits_limit BOOLEAN, verifies BOOLEAN, has_code BOOLEAN,
            says_restart BOOLEAN, notes_repeat BOOLEAN, reports_loop BOOLEAN
        )
        """
    )
    con.execute("CREATE TABLE rule_feature_traces (trace_id VARCHAR NOT NULL, version VARCHAR NOT NULL)")


@migration
def m030_learned_models(con: duckdb.DuckDBPyConnection) -> None:
    # Learned models as data (mast.classify.learned.model): the whole JSON document in
    # body, plus the columns a listing or a staleness check needs without parsing it.
    con.execute(
        """
        CREATE TABLE learned_models (
            model_id         VARCHAR PRIMARY KEY,  -- tagged content hash, e.g. la1-<16 hex>
            kind             VARCHAR NOT NULL,     -- attribution (later: modes)
            features_version VARCHAR NOT NULL,
            training_digest  VARCHAR,              -- sha256 of the (trace, agent, step) labels it was fitted on
            created_at       TIMESTAMP NOT NULL,
            body             VARCHAR NOT NULL      -- the model document (JSON), validated on load
        )
        """
    )


@migration
def m080_judge_endpoints(con: duckdb.DuckDBPyConnection) -> None:
    # The structured-output mode each judge endpoint and model took
    # (mast.classify.judge.structured), so a later run starts in it instead of being
    # refused again.  base_url '' is the client's default endpoint.
    con.execute(
        """
        CREATE TABLE judge_endpoints (
            base_url        VARCHAR NOT NULL,
            model           VARCHAR NOT NULL,
            response_format VARCHAR NOT NULL,     -- json_schema / json_object / text
            refused         JSON,                 -- [[mode, the endpoint's reason], ...] when it was negotiated
            updated_at      TIMESTAMP NOT NULL,
            PRIMARY KEY (base_url, model)
        )
        """
    )


@migration
def m100_review_sets(con: duckdb.DuckDBPyConnection) -> None:
    # Human review (mast.review): a review set is the traces `mast sample --for-review`
    # picked for a person to label, in the order the review page shows them.  A labels
    # file names its review set, so an import is checked against exactly these traces.
    con.execute(
        """
        CREATE TABLE review_sets (
            review_set_id VARCHAR PRIMARY KEY,  -- rs-<12 hex>, random: a set from another store never matches
            created_at    TIMESTAMP NOT NULL,
            strategy      VARCHAR NOT NULL,     -- uncertain / stratified / random
            seed          INTEGER NOT NULL,
            requested     INTEGER NOT NULL,     -- N asked for (the set may hold fewer)
            taxonomy      VARCHAR NOT NULL,     -- taxonomy id the labels must use
            systems       JSON,                 -- the --system filter, [] for every system
            arguments     JSON                  -- everything else that reproduces the choice
        )
        """
    )
    con.execute(
        """
        CREATE TABLE review_set_traces (
            review_set_id VARCHAR NOT NULL,
            position      INTEGER NOT NULL,     -- 0-based order on the review page
            trace_id      VARCHAR NOT NULL,
            reason        VARCHAR               -- why the strategy picked it
        )
        """
    )


@migration
def m070_run_process(con: duckdb.DuckDBPyConnection) -> None:
    # The process a run row belongs to (mast.store.process), so that a row left 'running'
    # by a process that died is marked 'interrupted' when the store is next opened for
    # writing, and a run in progress in another live process is not.
    con.execute("ALTER TABLE runs ADD COLUMN pid BIGINT")
    con.execute("ALTER TABLE runs ADD COLUMN host VARCHAR")
    con.execute("ALTER TABLE runs ADD COLUMN process_started VARCHAR")  # boot id and start ticks


@migration
def m050_redaction_counts(con: duckdb.DuckDBPyConnection) -> None:
    # How many credential-looking strings the store replaced on the way in (mast.redact):
    # in the trace's own fields (traces) and in each step (steps); a trace's total is its
    # row plus its steps'.  Rows stored before this migration count 0 (not re-scanned).
    con.execute("ALTER TABLE traces ADD COLUMN redactions INTEGER DEFAULT 0")
    con.execute("ALTER TABLE steps ADD COLUMN redactions INTEGER DEFAULT 0")


@migration
def m120_collect_staging(con: duckdb.DuckDBPyConnection) -> None:
    # `mast collect`: spans received over OTLP/HTTP are committed here, in the request's
    # transaction, before the request is answered (an acknowledged span survives kill -9).
    # A trace is built from its staged spans when it is complete (root ended, or idle);
    # collect_traces remembers which stored trace an OTel trace became, so that late spans
    # rebuild it and the new version replaces the old one.
    con.execute(
        """
        CREATE TABLE collect_spans (
            otel_trace_id VARCHAR NOT NULL,   -- lower-case hex
            span_id       VARCHAR NOT NULL,
            seq           BIGINT NOT NULL,    -- arrival order (ties broken in the request)
            body          VARCHAR NOT NULL    -- one OTLP/JSON request holding just this span
        )
        """
    )
    con.execute(
        """
        CREATE TABLE collect_traces (
            otel_trace_id   VARCHAR PRIMARY KEY,
            first_seen      TIMESTAMP NOT NULL,
            last_seen       TIMESTAMP NOT NULL,
            spans           INTEGER NOT NULL,   -- spans staged so far
            root_ended      BOOLEAN NOT NULL,   -- a span without parent has an end time
            built_spans     INTEGER NOT NULL,   -- spans in the stored version (0: not built)
            stored_trace_id VARCHAR,            -- the stored trace it became (content hash; not
                                                -- named trace_id: delete_traces clears such rows)
            error           VARCHAR             -- why it could not be built, if it could not
        )
        """
    )


@migration
def m140_ingested_file_traces(con: duckdb.DuckDBPyConnection) -> None:
    # Which traces each ingested file produced, so that a changed file can replace the
    # traces of its previous version (the file is the unit of re-ingest).  Files recorded
    # before this migration have no rows here: their old traces stay on re-ingest.
    con.execute(
        """
        CREATE TABLE ingested_file_traces (
            path     VARCHAR NOT NULL,  -- ingested_files.path
            trace_id VARCHAR NOT NULL
        )
        """
    )


@migration
def m170_collect_request_bodies(con: duckdb.DuckDBPyConnection) -> None:
    # `mast collect` stages each request's body once (as received, decompressed) instead
    # of one OTLP/JSON body per span: re-serialising every span was most of a request's
    # cost.  collect_spans keeps one index row per span (trace, span, arrival order,
    # whether it is an ended root) and names its request; rows staged before this
    # migration keep their own body.  Acknowledging a request only appends rows: the
    # per-trace counts in collect_traces are brought up to date later, for every span
    # staged since (seq > collect_folded.seq), in one upsert (an upsert per request cost
    # more than the rest of the commit).
    con.execute(
        """
        CREATE TABLE collect_requests (
            req  BIGINT PRIMARY KEY,  -- collect_spans.req
            fmt  VARCHAR NOT NULL,    -- 'protobuf' or 'json'
            body BLOB NOT NULL        -- the ExportTraceServiceRequest, decompressed
        )
        """
    )
    con.execute("ALTER TABLE collect_spans ADD COLUMN req BIGINT")
    con.execute("ALTER TABLE collect_spans ADD COLUMN root_ended BOOLEAN")
    con.execute("ALTER TABLE collect_spans ALTER COLUMN body DROP NOT NULL")
    # the spans staged so far were counted into collect_traces when staged
    con.execute("CREATE TABLE collect_folded (seq BIGINT NOT NULL)")
    con.execute("INSERT INTO collect_folded SELECT coalesce(max(seq), 0) FROM collect_spans")


@migration
def m180_cached_tokens(con: duckdb.DuckDBPyConnection) -> None:
    # Of a judge run's (and a cached verdict's) prompt tokens, how many the endpoint said it
    # served from its prefix cache (usage.prompt_tokens_details.cached_tokens): providers
    # bill those at a discount, and the share says whether the fixed prompt prefix is
    # doing its job.  NULL on rows stored before this migration: not recorded, not zero.
    con.execute("ALTER TABLE runs ADD COLUMN tokens_cached BIGINT")
    con.execute("ALTER TABLE judge_cache ADD COLUMN tokens_cached BIGINT")


@migration
def m150_run_sources(con: duckdb.DuckDBPyConnection) -> None:
    # The artefacts of one run (mast.ingest.identity): every trace an ingested file produced,
    # with its run key, and the stored trace its run became.  The run's trace is built from
    # the richest artefact (chosen); the others are its alternate sources, not stored as
    # traces of their own.  The stored trace's id is not named trace_id, so that
    # delete_traces (a changed file replacing its trace) keeps the alternates' rows.
    con.execute(
        """
        CREATE TABLE run_sources (
            path            VARCHAR NOT NULL,  -- ingested_files.path
            format          VARCHAR NOT NULL,
            source_trace_id VARCHAR NOT NULL,  -- the trace this artefact read as
            stored_trace_id VARCHAR,           -- the trace its run is stored as
            run_key         VARCHAR,           -- NULL: the artefact carries no run id
            kind            VARCHAR,
            rank            INTEGER NOT NULL,
            steps           INTEGER NOT NULL,
            fingerprint     VARCHAR,
            chosen          BOOLEAN NOT NULL,
            why             VARCHAR,           -- why it was chosen, or why not
            rank_why        VARCHAR            -- what the artefact holds (its rank's reason)
        )
        """
    )


@migration
def m190_run_groups(con: duckdb.DuckDBPyConnection) -> None:
    # Artefacts of one run that no id ties (mast.ingest.identity: same task, opening
    # messages and agents, overlapping times) are merged like id matches.  run_group is the
    # run an artefact belongs to (its run key, or 'content:<trace id>', or the group of the
    # artefact it was matched to), match_rule the rule that put it there (NULL: its own run),
    # t_start / t_end / agents / framework / messages what the content rule compares (UTC;
    # JSON lists: digests of the agent names and of the first messages),
    # part whether the artefact holds one agent's view of its run only (an ag2 1.x history).
    con.execute("ALTER TABLE run_sources ADD COLUMN run_group VARCHAR")
    con.execute("ALTER TABLE run_sources ADD COLUMN match_rule VARCHAR")
    con.execute("ALTER TABLE run_sources ADD COLUMN t_start TIMESTAMP")
    con.execute("ALTER TABLE run_sources ADD COLUMN t_end TIMESTAMP")
    con.execute("ALTER TABLE run_sources ADD COLUMN agents VARCHAR")
    con.execute("ALTER TABLE run_sources ADD COLUMN framework VARCHAR")
    con.execute("ALTER TABLE run_sources ADD COLUMN part BOOLEAN")
    con.execute("ALTER TABLE run_sources ADD COLUMN messages VARCHAR")
    con.execute("UPDATE run_sources SET run_group = coalesce(run_key, 'content:' || source_trace_id)")


@migration
def m200_collect_stitching(con: duckdb.DuckDBPyConnection) -> None:
    # `mast collect` stitches the OTel traces of one run as `mast ingest` does (links,
    # a parent span under another trace id, a shared run id): each staged span keeps what
    # may tie its trace to another, and each OTel trace names its group (the smallest
    # OTel trace id of the traces stitched together), which is built and stored as one
    # trace.  Spans staged before this migration tie nothing (NULL); groups start alone.
    con.execute("ALTER TABLE collect_spans ADD COLUMN parent_span_id VARCHAR")
    con.execute("ALTER TABLE collect_spans ADD COLUMN link_trace_ids VARCHAR[]")
    con.execute("ALTER TABLE collect_spans ADD COLUMN run_ids VARCHAR[]")  # 'key=value' (RUN_ID_ATTRS)
    con.execute("ALTER TABLE collect_traces ADD COLUMN grp VARCHAR")
    con.execute("UPDATE collect_traces SET grp = otel_trace_id")


@migration
def m210_run_facts(con: duckdb.DuckDBPyConnection) -> None:
    # The winner of a run inherits what only an alternate knows (AgentChat's TaskResult
    # says why the run stopped, its event log does not).  facts: what the artefact itself
    # says of the run (JSON: outcome, outcome_reason, task, system, tokens), kept for an
    # alternate whose trace was never written; inherited, on the chosen artefact's row:
    # which of its trace's facts came from which alternate (JSON: fact -> path, format).
    # Artefacts recorded before this migration know no facts (NULL): they give nothing.
    con.execute("ALTER TABLE run_sources ADD COLUMN facts VARCHAR")
    con.execute("ALTER TABLE run_sources ADD COLUMN inherited VARCHAR")


@migration
def m240_collect_llm_copies(con: duckdb.DuckDBPyConnection) -> None:
    # `mast collect` drops what `mast ingest` drops: a trace made only of LLM spans that
    # sits, in time, inside an LLM span of another trace (OpenInference's CrewAI event
    # mode re-emits every LLM call as a root of its own).  collect_llm holds the LLM spans
    # of every built OTel trace (end: the start when it has none), collect_traces.llm_only
    # whether its group is made only of LLM spans, and copy_of the group whose LLM span
    # holds it when it is such a copy (then it is not stored: stored_trace_id NULL).
    # empty: the group has no LLM, tool or agent span (nor an AgentChat runtime span);
    # `mast ingest` leaves such a trace out of a file that holds others (AgentChat's
    # agent-construction roots), the endpoint when any other group is staged.
    con.execute(
        """
        CREATE TABLE collect_llm (
            otel_trace_id VARCHAR NOT NULL,
            start_ns      BIGINT NOT NULL,
            end_ns        BIGINT NOT NULL
        )
        """
    )
    con.execute("ALTER TABLE collect_traces ADD COLUMN llm_only BOOLEAN DEFAULT false")
    con.execute("ALTER TABLE collect_traces ADD COLUMN copy_of VARCHAR")
    con.execute("ALTER TABLE collect_traces ADD COLUMN empty BOOLEAN DEFAULT false")


@migration
def m250_collect_first_seq(con: duckdb.DuckDBPyConnection) -> None:
    # the arrival number of each OTel trace's first staged span: a build reads a batch's
    # spans from collect_spans with ``seq >=`` the smallest of its traces', which DuckDB
    # answers from the row groups after it (their min and max) instead of scanning every
    # span staged within the horizon, as ``otel_trace_id IN (…)`` alone did
    con.execute("ALTER TABLE collect_traces ADD COLUMN first_seq BIGINT")
    con.execute("UPDATE collect_traces SET first_seq = f.s FROM (SELECT otel_trace_id, min(seq) AS s FROM collect_spans "
                "GROUP BY otel_trace_id) f WHERE collect_traces.otel_trace_id = f.otel_trace_id")
