-- The dashboards' variable lists without reading every session (issue #35). `SELECT DISTINCT
-- client_type FROM archon_mcp_sessions` read all of them on every dashboard load: 23–35 ms at
-- 100,000 sessions, growing with history forever. These functions skip through an index from
-- one value to the next (a loose index scan), so a list costs its length, not the table.
-- Row-level security holds (a reader's list is its own).

CREATE INDEX IF NOT EXISTS idx_archon_mcp_sessions_department ON archon_mcp_sessions (user_department)
    WHERE user_department IS NOT NULL;
-- The user list's name comes from each key's latest session.
CREATE INDEX IF NOT EXISTS idx_archon_mcp_sessions_user_key_activity ON archon_mcp_sessions (user_key, last_activity DESC)
    WHERE user_key IS NOT NULL;
DROP INDEX IF EXISTS idx_archon_mcp_sessions_user_key;

-- Every client type there are sessions of, in order.
CREATE FUNCTION archon_mcp_client_types()
RETURNS SETOF text
LANGUAGE sql
STABLE
AS $fn$
    WITH RECURSIVE t(v) AS (
        (SELECT s.client_type::text FROM archon_mcp_sessions s ORDER BY s.client_type LIMIT 1)
        UNION ALL
        SELECT (SELECT s.client_type::text FROM archon_mcp_sessions s
                 WHERE s.client_type > t.v ORDER BY s.client_type LIMIT 1)
          FROM t WHERE t.v IS NOT NULL
    )
    SELECT v FROM t WHERE v IS NOT NULL
$fn$;

-- Every department there are sessions of, in order.
CREATE FUNCTION archon_mcp_departments()
RETURNS SETOF text
LANGUAGE sql
STABLE
AS $fn$
    WITH RECURSIVE t(v) AS (
        (SELECT s.user_department FROM archon_mcp_sessions s
          WHERE s.user_department IS NOT NULL ORDER BY s.user_department LIMIT 1)
        UNION ALL
        SELECT (SELECT s.user_department FROM archon_mcp_sessions s
                 WHERE s.user_department > t.v ORDER BY s.user_department LIMIT 1)
          FROM t WHERE t.v IS NOT NULL
    )
    SELECT v FROM t WHERE v IS NOT NULL
$fn$;

-- Every user key with the name to show for it (name, else e-mail, else the key) from the key's
-- latest session.
CREATE FUNCTION archon_mcp_user_choices()
RETURNS TABLE (user_key text, label text)
LANGUAGE sql
STABLE
AS $fn$
    WITH RECURSIVE t(v) AS (
        (SELECT s.user_key FROM archon_mcp_sessions s WHERE s.user_key IS NOT NULL ORDER BY s.user_key LIMIT 1)
        UNION ALL
        SELECT (SELECT s.user_key FROM archon_mcp_sessions s
                 WHERE s.user_key > t.v ORDER BY s.user_key LIMIT 1)
          FROM t WHERE t.v IS NOT NULL
    )
    SELECT t.v, (SELECT coalesce(s.user_name, s.user_email, s.user_key) FROM archon_mcp_sessions s
                  WHERE s.user_key = t.v ORDER BY s.last_activity DESC LIMIT 1)
      FROM t WHERE t.v IS NOT NULL
$fn$;
