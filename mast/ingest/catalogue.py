"""The built-in importers as ``mast formats`` lists them, without importing them.

Generated from the importers (``tests/ingest/test_format_catalogue.py`` checks it and, run
as a script, rewrites it): one ``(name, description, example)`` per entry of
:data:`mast.ingest.registry.BUILTINS`, in that order.  Listing formats from this table
saves importing every importer module (a third of the command's start-up); detection and
reading still use the importers.  :data:`BUILTIN_COMPANIONS` names the built-ins that
define ``companion`` (a file they read beside their own, to be skipped): the only ones the
companion check imports before detection.
"""

BUILTIN_FORMATS: tuple[tuple[str, str, str | None], ...] = (
    ('mad', 'MAST MAD records: human-labelled file and full-dataset shape (mast_annotation)', '[{"round": "Round 1", "mas_name": "AppWorld", "trace_id": 0, "trace": "…", "mast_annotation": {"1.1": 0, …'),
    ('whowhen', 'Who&When failure-attribution records (history + mistake_agent/step)', '{"is_corrected": false, "question": "…", "history": [{"content": "…", "role": "Orchestrator (-> WebSurfer)"}, …], "mistake_agent": …'),
    ('crewai-events', 'CrewAI 1.x event-bus JSONL (BaseEvent per line, model_dump or to_json)', '{"timestamp": "2026-11-29T15:42:27.955688Z", "type": "crew_kickoff_started", "source_fingerprint": null, "event_id": …'),
    ('crewai-checkpoint', 'CrewAI 1.x checkpoint JSON (crewai_version + entities + event_record)', '{"crewai_version": "1.15.30", "parent_id": "…", "branch": "main", "entities": [{"entity_type": "crew", …'),
    ('crewai-output', 'CrewAI CrewOutput JSON (raw + tasks_output[].messages + token_usage), or TaskOutput JSON lines (task_callback)', '{"raw": "…", "pydantic": null, "json_dict": null, "tasks_output": [{"description": "…", "messages": […'),
    ('crewai-log', 'CrewAI output_log_file (.txt lines or .json array of task status entries)', '2026-11-29 15:42:28: task_name="research", task="…", agent="Researcher", status="started"'),
    ('crewai-steps', 'CrewAI step_callback dumps: AgentAction / ToolResult / AgentFinish per line (repr or asdict)', '"AgentAction(thought=\'Thought: I should search.\', tool=\'web_search\', tool_input=\'{…}\', …)"'),
    ('langsmith', 'LangSmith runs: tree (child_runs) or flat JSON/JSONL (parent_run_id, dotted_order)', '[{"id": "…", "name": "fix_loop", "start_time": "…", "run_type": "chain", "child_runs": [{"parent_run_id": …'),
    ('langgraph-stream', 'LangGraph graph.stream() dump (v2 {type, ns, data} parts; v1 debug/updates/messages)', '{"type": "checkpoints", "ns": [], "data": {"config": {"configurable": {"thread_id": "…"}}, …'),
    ('langgraph-events', 'LangChain/LangGraph astream_events(version="v2") JSONL (on_chat_model_end, on_tool_end, ...)', '{"event": "on_chain_start", "data": {"input": {"messages": […]}}, "name": "LangGraph", "run_id": …'),
    ('langgraph-messages', 'LangChain/LangGraph message list (messages_to_dict, dumpd or model_dump form)', '[{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "HumanMessage"], "kwargs": {…'),
    ('phoenix', "Arize Phoenix span exports: JSON/JSONL spans with context.trace_id, span_kind, flat OpenInference attributes; REST pages of /spans and /spans/otlpv1, the UI's OTLP JSON download", '[{"name": "pxi.turn", "context": {"trace_id": "…", "span_id": "s01"}, "span_kind": "AGENT", "parent_id": null, …'),
    ('langfuse', 'Langfuse exports: a trace with its observations (UI download, GET /api/public/traces/{id}), pages of GET /api/public/observations and /api/public/v2/observations', '{"trace": {"id": "1b72c51f…", "name": "autogen-chat-trace", …}, "observations": [{"id": …, "parentObservationId": …'),
    ('spantree', 'Nested span-tree dumps {trace_id, spans: [{span_id, span_name, span_attributes, child_spans}]} (TRAIL)', '{"trace_id": "…", "spans": [{"span_id": "…", "parent_span_id": null, "span_name": "main", "child_spans": […'),
    ('openai-agents', "OpenAI Agents SDK traces: trace/span export() dicts, as JSON Lines or the backend exporter's batches", '{"object": "trace", "id": "trace_e5526e38…", "workflow_name": "Agent workflow", "group_id": null, …'),
    ('otel', 'OpenTelemetry spans: OTLP/JSON, span JSONL or SDK to_json (GenAI semconv, OpenInference, LangSmith, CrewAI)', '{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": …'),
    ('magentic-one-log', 'autogen-magentic-one LogHandler log.jsonl (OrchestrationEvent, LLMCallEvent, WebSurferEvent, …)', '{"timestamp": "2024-11-20T10:02:11.473518", "source": "Orchestrator (thought)", "message": "…", "type": "OrchestrationEvent"}'),
    ('autogen-events', 'AutoGen core event log (autogen_core.events JSON lines: LLMCall, Message, ToolCall)', '{"ts": 1795965320.76, "logger": "autogen_core.events", "level": "INFO", "py_type": "MessageEvent", "event": {…'),
    ('autogen-state', "AutoGen AgentChat team.save_state() JSON: the group chat manager's message thread", '{"type": "TeamState", "version": "1.0.0", "agent_states": {"planner": {"type": "ChatAgentContainerState", …'),
    ('autogen', 'AutoGen AgentChat 0.4-0.7: TaskResult JSON, message lists, run_stream JSONL', '{"messages": [{"id": "…", "source": "user", "models_usage": null, "content": "…", "type": "TextMessage"}, …'),
    ('ag2-runtime-db', 'AG2 / AutoGen 0.2 runtime_logging SQLite database (chat_completions, events, ...)', 'SQLite format 3\\x00 … tables chat_completions, agents, events, function_calls'),
    ('ag2-runtime-log', "AG2 / AutoGen 0.2 runtime_logging file log (JSON lines + 'Started new session' lines)", 'Started new session with Session ID: 551e661c-…\\n{"id": 1404…, "agent_name": "user_proxy", "session_id": …'),
    ('openai-agents-session', 'OpenAI Agents SDK SQLiteSession database (agent_messages: one Responses API item per row)', 'SQLite format 3\\x00 … tables agent_sessions, agent_messages (session_id, message_data)'),
    ('ag2-events', 'AG2 .run() / run_group_chat() events, one model_dump per line ({type, content: {uuid, ...}})', '{"type": "text", "content": {"uuid": "…", "content": "…", "sender": "user", "recipient": "chat_manager"}}'),
    ('ag2x-events', 'ag2 1.x history event logs (EventLogWriter: /log/<stream>.jsonl, {type: ag2.events.*, data})', '{"type": "ag2.events.input_events.ModelRequest", "data": {"created_at": 1796131923.85, "parts": [{"__event__": …'),
    ('ag2x-wal', 'ag2 1.x hub channel WAL (channels/<id>/wal.jsonl: one Envelope per line)', '{"audience": null, "causation_id": null, "channel_id": "18ed…", "created_at": "2026-…", "depth": 0, "envelope_id": …'),
    ('ag2x-audit', 'ag2 1.x hub audit log (audit/audit.jsonl: {at, kind} records), one trace per channel', '{"agent_id": "18ed…", "at": "2026-…", "kind": "agent_registered", "name": "coordinator"}'),
    ('ag2-chat', 'AG2 / AutoGen 0.2 ChatResult JSON (chat_id, chat_history, summary, cost) and chat_history lists', '{"chat_id": 2960…, "chat_history": [{"content": "…", "role": "assistant", "name": "user_proxy"}, …], "summary": …'),
    ('openai-agents-state', 'OpenAI Agents SDK run states (RunResult.to_state().to_json(): a paused or finished run)', '{"$schemaVersion": "1.21", "current_turn": 3, "current_agent": {"name": "flights_agent"}, "original_input": …'),
    ('trajectory', 'Tool-calling trajectories {task_id, trial, reward, info, traj: [OpenAI messages]} (tau-bench results)', '[{"task_id": 12, "reward": 1.0, "info": {"task": …}, "traj": [{"role": "system", "content": …'),
    ('messages', 'Generic message list: JSON array or JSONL of {role, name|agent, content} (OpenAI tool_calls)', '[{"role": "system", "content": "…"}, {"role": "user", "content": "…"}, {"role": "assistant", "name": "planner", …'),
)
BUILTIN_COMPANIONS: frozenset[str] = frozenset(('mad', 'phoenix', 'langfuse', 'ag2x-wal'))
