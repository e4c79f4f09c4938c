-- Personal data under the user's control (issue #34): `archon-mcp-exporter users forget` and
-- `users export` record here that they ran — which action, under which policy, by whom, when,
-- how many rows — without the data: the subject is a SHA-256 of the user key.
CREATE TABLE archon_privacy_audit (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action        text NOT NULL CHECK (action IN ('forget', 'export')),
    policy        text CHECK (policy IN ('delete', 'pseudonymise')),
    subject_hash  text NOT NULL,
    performed_by  name NOT NULL DEFAULT current_user,
    performed_at  timestamptz NOT NULL DEFAULT now(),
    counts        jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE archon_privacy_audit IS
    'Each erasure and export of one person''s data: action, policy, who ran it, when, row counts; the subject only as sha256 of its user key';

ALTER TABLE archon_privacy_audit ENABLE ROW LEVEL SECURITY;
CREATE POLICY archon_privacy_audit_admin ON archon_privacy_audit
    FOR ALL TO archon_admin USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON archon_privacy_audit TO archon_admin;
