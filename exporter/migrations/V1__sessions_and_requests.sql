-- Sessions and requests: Archon's tables and columns, plus ours (DESIGN §5).
--
-- Differences from Archon, on purpose:
--   * total_duration is generated from connected_at/disconnected_at, so every way a session
--     ends (client, shutdown, reaper timeout) has one (Archon left it NULL on timeout);
--   * no trigger on request insert: Archon's revived disconnected sessions; the exporter's
--     upsert keeps sessions current instead;
--   * requests are range-partitioned by month on "timestamp", with a default partition so
--     no row is ever rejected for its date;
--   * duration_ms is double precision, total_tokens is bigint (two integers can overflow one).

CREATE TABLE archon_mcp_sessions (
    session_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_type         varchar(50) NOT NULL DEFAULT 'Unknown',
    client_name         text,
    client_version      varchar(100),
    client_capabilities jsonb,
    connected_at        timestamptz NOT NULL DEFAULT now(),
    disconnected_at     timestamptz,
    last_activity       timestamptz NOT NULL DEFAULT now(),
    status              varchar(20) NOT NULL DEFAULT 'active',
    metadata            jsonb NOT NULL DEFAULT '{}',
    total_duration      integer GENERATED ALWAYS AS (
        CASE WHEN disconnected_at IS NOT NULL
             THEN greatest(0, round(extract(epoch FROM disconnected_at - connected_at)))::integer
        END) STORED,
    disconnect_reason   varchar(100),
    user_id             uuid,
    user_key            text,
    user_email          varchar(255),
    user_name           varchar(255),
    user_department     text,
    mcp_session_id      text,
    service_name        text,
    CONSTRAINT valid_status CHECK (status IN ('active', 'idle', 'disconnected')),
    -- "disconnected" and a disconnect time go together, always.
    CONSTRAINT disconnected_has_time CHECK ((status = 'disconnected') = (disconnected_at IS NOT NULL))
);

COMMENT ON TABLE archon_mcp_sessions IS
    'Analytics sessions: one per MCP connection, opened by its first tool call (archon-mcp-otel).';
COMMENT ON COLUMN archon_mcp_sessions.client_type IS
    'Normalised client: Claude, Cursor, Windsurf, Cline, KiRo, Augment, Gemini, ... or Unknown';
COMMENT ON COLUMN archon_mcp_sessions.client_name IS 'Raw client name from MCP initialize';
COMMENT ON COLUMN archon_mcp_sessions.total_duration IS
    'Seconds from connected_at to disconnected_at; generated, NULL while the session is open';
COMMENT ON COLUMN archon_mcp_sessions.user_id IS
    'The principal if it is a UUID, else UUIDv5 of it (see user_key)';
COMMENT ON COLUMN archon_mcp_sessions.user_key IS 'The raw authenticated principal (JWT sub, ...)';
COMMENT ON COLUMN archon_mcp_sessions.mcp_session_id IS 'The transport''s Mcp-Session-Id, if any';

CREATE INDEX idx_archon_mcp_sessions_status_activity ON archon_mcp_sessions (status, last_activity DESC);
CREATE INDEX idx_archon_mcp_sessions_connected_at ON archon_mcp_sessions (connected_at DESC);
CREATE INDEX idx_archon_mcp_sessions_last_activity ON archon_mcp_sessions (last_activity DESC);
CREATE INDEX idx_archon_mcp_sessions_client_type ON archon_mcp_sessions (client_type);
CREATE INDEX idx_archon_mcp_sessions_user_activity ON archon_mcp_sessions (user_id, last_activity DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX idx_archon_mcp_sessions_user_email ON archon_mcp_sessions (user_email)
    WHERE user_email IS NOT NULL;
CREATE INDEX idx_archon_mcp_sessions_user_key ON archon_mcp_sessions (user_key)
    WHERE user_key IS NOT NULL;

-- Which of two session ends stands: a real end (client, shutdown, error) beats the reaper's
-- "timeout" guess, then the earlier end, then the smaller reason. A total order, so replays and
-- any arrival order of the same spans give the same row.
CREATE FUNCTION archon_mcp_end_wins(
    new_at timestamptz, new_reason text,
    old_at timestamptz, old_reason text
)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
AS $fn$
    SELECT new_at IS NOT NULL AND (
        old_at IS NULL
        OR (new_reason IS NOT DISTINCT FROM 'timeout', new_at, coalesce(new_reason, ''))
         < (old_reason IS NOT DISTINCT FROM 'timeout', old_at, coalesce(old_reason, '')))
$fn$;

CREATE TABLE archon_mcp_requests (
    request_id         uuid NOT NULL DEFAULT gen_random_uuid(),
    session_id         uuid NOT NULL REFERENCES archon_mcp_sessions (session_id) ON DELETE CASCADE,
    method             varchar(100) NOT NULL,
    tool_name          varchar(255),
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    total_tokens       bigint GENERATED ALWAYS AS (prompt_tokens::bigint + completion_tokens) STORED,
    token_source       varchar(10) NOT NULL DEFAULT 'none',
    model              text,
    estimated_cost     numeric(14, 6),
    "timestamp"        timestamptz NOT NULL DEFAULT now(),
    duration_ms        double precision,
    status             varchar(20) NOT NULL DEFAULT 'success',
    error_type         text,
    error_code         integer,
    error_message      text,
    user_id            uuid,
    trace_id           text,
    span_id            text,
    jsonrpc_request_id text,
    PRIMARY KEY (request_id, "timestamp"),
    CONSTRAINT valid_status CHECK (status IN ('success', 'error', 'timeout')),
    CONSTRAINT valid_token_source CHECK (token_source IN ('reported', 'estimated', 'none')),
    CONSTRAINT non_negative_tokens CHECK (prompt_tokens >= 0 AND completion_tokens >= 0),
    CONSTRAINT non_negative_duration CHECK (duration_ms >= 0)
) PARTITION BY RANGE ("timestamp");

COMMENT ON TABLE archon_mcp_requests IS
    'One row per MCP request span; partitioned by month on "timestamp" (archon-mcp-otel).';
COMMENT ON COLUMN archon_mcp_requests.request_id IS 'UUIDv5 of the span''s trace id and span id';
COMMENT ON COLUMN archon_mcp_requests."timestamp" IS 'Span start';
COMMENT ON COLUMN archon_mcp_requests.token_source IS
    'reported (by tool code), estimated (by the instrumentation) or none';
COMMENT ON COLUMN archon_mcp_requests.estimated_cost IS
    'USD: the reported cost, else tokens x the model price effective at "timestamp"; NULL if unpriced';
COMMENT ON COLUMN archon_mcp_requests.user_id IS 'The requesting user (the session''s when the span had none)';

CREATE TABLE archon_mcp_requests_default PARTITION OF archon_mcp_requests DEFAULT;

-- Three secondary indexes, no more: each one costs ingest throughput (DESIGN §8).
CREATE INDEX idx_archon_mcp_requests_timestamp ON archon_mcp_requests ("timestamp" DESC);
CREATE INDEX idx_archon_mcp_requests_session_time ON archon_mcp_requests (session_id, "timestamp" DESC);
CREATE INDEX idx_archon_mcp_requests_user_time ON archon_mcp_requests (user_id, "timestamp" DESC);

-- Creates the monthly partitions from `from_date`'s month through `months_ahead` months later
-- and returns the names it created. Rows that already sit in the default partition for a new
-- month are moved into it, so the function never fails on data that arrived early.
-- SECURITY DEFINER so the exporter's role can call it without owning the table.
CREATE FUNCTION archon_mcp_create_request_partitions(
    months_ahead integer DEFAULT 3,
    from_date date DEFAULT current_date
)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    month_start date;
    month_end   date;
    part_name   text;
    columns     text;
BEGIN
    -- Several replicas may call this at once; one at a time.
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_create_request_partitions'));

    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
      INTO columns
      FROM pg_attribute
     WHERE attrelid = 'archon_mcp_requests'::regclass
       AND attnum > 0 AND NOT attisdropped AND attgenerated = '';

    FOR i IN 0 .. greatest(months_ahead, 0) LOOP
        month_start := (date_trunc('month', from_date) + make_interval(months => i))::date;
        month_end   := (month_start + interval '1 month')::date;
        part_name   := format('archon_mcp_requests_%s', to_char(month_start, 'YYYY_MM'));
        CONTINUE WHEN to_regclass(part_name) IS NOT NULL;

        EXECUTE format('CREATE TABLE %I (LIKE archon_mcp_requests INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)',
                       part_name);
        EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM archon_mcp_requests_default WHERE "timestamp" >= %L AND "timestamp" < %L',
                       part_name, columns, columns, month_start, month_end);
        EXECUTE format('DELETE FROM archon_mcp_requests_default WHERE "timestamp" >= %L AND "timestamp" < %L',
                       month_start, month_end);
        EXECUTE format('ALTER TABLE archon_mcp_requests ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part_name, month_start, month_end);
        RETURN NEXT part_name;
    END LOOP;
END;
$fn$;

COMMENT ON FUNCTION archon_mcp_create_request_partitions(integer, date) IS
    'Creates monthly partitions of archon_mcp_requests from from_date''s month through months_ahead months later';

SELECT archon_mcp_create_request_partitions(3);
