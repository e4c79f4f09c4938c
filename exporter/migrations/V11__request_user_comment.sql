-- The requests' user_id is the user who made the request — its span's own principal — and
-- never its session's (issue #13): V1's comment said the opposite.
COMMENT ON COLUMN archon_mcp_requests.user_id IS
    'The user who made the request (its span''s own principal); NULL for an anonymous request, never inherited from its session';
