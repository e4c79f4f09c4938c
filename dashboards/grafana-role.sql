-- A login for Grafana: it can read every row of the MCP tables (row-level security grants
-- archon_grafana all rows) and write nothing. Run as a superuser or the schema owner, after
-- `archon-mcp-exporter migrate`.
CREATE ROLE grafana_archon LOGIN PASSWORD 'change-me';
GRANT archon_grafana TO grafana_archon;
-- Queries time out rather than pile up on a busy database.
ALTER ROLE grafana_archon SET statement_timeout = '30s';
-- Dashboard queries scan a few thousand to a few million rows: PostgreSQL's JIT, which the
-- planner turns on for large estimates, costs more to compile than it saves here.
ALTER ROLE grafana_archon SET jit = off;
