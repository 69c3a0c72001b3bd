-- Migration: Create Audit Tables
-- Version: 003
-- Description: create the audit trail: a change history of security-relevant tables, written by triggers
-- Created: 2026-11-27T03:30:00Z
--
-- Hand-written, PostgreSQL only (SQLite records version 003 with nothing to run).
--
-- The `audit_logs` entity holds what the application chooses to record (an actor, an action, a summary).
-- `audit_trail` adds what application code cannot be trusted to write: every insert, update and delete of
-- the tables below, however it happened (ORM, bulk update, raw SQL, psql), with the row before and after.
-- High-volume tables (user_sessions, user_activities) and the audit tables themselves are not audited.

CREATE TABLE IF NOT EXISTS audit_trail (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text NOT NULL,
    record_id uuid,
    operation text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    business_id uuid,
    changed_by uuid,
    changed_columns text[],
    old_data jsonb,
    new_data jsonb,
    changed_at timestamptz NOT NULL DEFAULT now(),
    transaction_id bigint NOT NULL DEFAULT txid_current()
);

CREATE INDEX IF NOT EXISTS idx_audit_trail_table_record ON audit_trail (table_name, record_id, changed_at);
CREATE INDEX IF NOT EXISTS idx_audit_trail_business_changed ON audit_trail (business_id, changed_at);

-- One row per changed row. An UPDATE that changes no column is not history and is skipped. changed_by is
-- the row's own updated_by (created_by on insert), which the entity code stamps from the request context.
CREATE OR REPLACE FUNCTION collex_audit_trail() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    row_data jsonb;
    changed text[];
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_row := to_jsonb(OLD);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_row := to_jsonb(NEW);
    END IF;
    row_data := coalesce(new_row, old_row);
    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(n.key ORDER BY n.key) INTO changed
        FROM jsonb_each(new_row) AS n
        WHERE n.value IS DISTINCT FROM old_row -> n.key;
        IF changed IS NULL THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO audit_trail
        (table_name, record_id, operation, business_id, changed_by, changed_columns, old_data, new_data)
    VALUES (
        TG_TABLE_NAME,
        (row_data ->> 'id')::uuid,
        TG_OP,
        CASE WHEN TG_TABLE_NAME = 'businesses' THEN (row_data ->> 'id')::uuid
             ELSE (row_data ->> 'business_id')::uuid END,
        coalesce(new_row ->> 'updated_by', new_row ->> 'created_by', old_row ->> 'updated_by')::uuid,
        changed,
        old_row,
        new_row
    );
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER trg_businesses_audit AFTER INSERT OR UPDATE OR DELETE ON businesses
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail();
CREATE OR REPLACE TRIGGER trg_users_audit AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail();
CREATE OR REPLACE TRIGGER trg_roles_audit AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail();
CREATE OR REPLACE TRIGGER trg_permissions_audit AFTER INSERT OR UPDATE OR DELETE ON permissions
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail();
CREATE OR REPLACE TRIGGER trg_role_permissions_audit AFTER INSERT OR UPDATE OR DELETE ON role_permissions
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail();
CREATE OR REPLACE TRIGGER trg_user_roles_audit AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail();
