-- Rollback Migration: Audit Trigger By Argument
-- Version: 006
-- Description: Rollback the audit trail names the audited table by a trigger argument
-- Created: 2026-11-30T23:50:00Z

DROP POLICY IF EXISTS collex_business_isolation ON audit_trail;
ALTER TABLE audit_trail DISABLE ROW LEVEL SECURITY;

-- Migration 003's function and triggers, as they were.
CREATE OR REPLACE FUNCTION collex_audit_trail() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
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
ALTER FUNCTION collex_audit_trail() RESET search_path;

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
