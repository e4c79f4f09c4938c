-- Marks that never make a writer wait (issue #35). A write marked its hours with `INSERT … ON
-- CONFLICT DO NOTHING` against the hour's key, and the reaper's round deleted the marks it took
-- first, then recomputed for as long as the hours took: a write into a marked hour found that
-- key deleted by a transaction still open and waited for it to end. Under the soak's 5,000
-- spans/s an export waited up to 2.3 s in each round, more as the current hour grew. Without the
-- key a mark is one row per writing statement and hour: a round deletes those its snapshot sees,
-- those written meanwhile stay for the next, and nobody waits. Readers ask whether an hour is
-- marked, or take its DISTINCT hours (V24's corrections do from the start). (V14's and V15's trigger functions keep their `ON
-- CONFLICT DO NOTHING`: with no unique index it never fires.)

ALTER TABLE archon_mcp_rollup_dirty DROP CONSTRAINT archon_mcp_rollup_dirty_pkey;
CREATE INDEX idx_archon_mcp_rollup_dirty_hour ON archon_mcp_rollup_dirty (hour);

-- V15's gaps, each marked hour once.
CREATE OR REPLACE FUNCTION archon_mcp_rollup_gaps(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql
STABLE
AS $fn$
    SELECT p_from, b.lo FROM archon_mcp_rollup_span(p_from, p_to) b WHERE p_from < b.lo
    UNION ALL
    SELECT b.hi, p_to FROM archon_mcp_rollup_span(p_from, p_to) b WHERE b.hi < p_to
    UNION ALL
    SELECT d.hour, d.hour + interval '1 hour'
      FROM archon_mcp_rollup_span(p_from, p_to) b,
           LATERAL (SELECT DISTINCT m.hour FROM archon_mcp_rollup_dirty m WHERE m.hour >= b.lo AND m.hour < b.hi) d
$fn$;
