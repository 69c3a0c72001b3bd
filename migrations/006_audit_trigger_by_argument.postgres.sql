-- Migration: Audit Trigger By Argument
-- Version: 006
-- Description: the audit trail names the audited table by a trigger argument and is confined like the tables
-- Created: 2026-11-30T23:50:00Z
--
-- Hand-written, PostgreSQL only (SQLite records version 006 with nothing to run).
--
-- Why: migration 003's trigger function named the audited table with TG_TABLE_NAME. Under a sharded
-- deployment (Citus) a trigger fires on the shard, whose name is the table's plus a shard number
-- (`users_102053`), so the audit rows named tables that do not exist for the application. Each trigger now
-- passes its table's name as an argument, which is the same on every shard.
--
-- The function is SECURITY DEFINER (it runs as the owner of the tables, who owns audit_trail): the trail
-- gets row-level security below, enabled but not forced, so the application role reads only its business's
-- history while every change is still recorded, also changes of rows without a business (permissions).

CREATE OR REPLACE FUNCTION collex_audit_trail() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    audited text := coalesce(TG_ARGV[0], TG_TABLE_NAME);
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
        audited,
        (row_data ->> 'id')::uuid,
        TG_OP,
        CASE WHEN audited = 'businesses' THEN (row_data ->> 'id')::uuid
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
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail('businesses');
CREATE OR REPLACE TRIGGER trg_users_audit AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail('users');
CREATE OR REPLACE TRIGGER trg_roles_audit AFTER INSERT OR UPDATE OR DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail('roles');
CREATE OR REPLACE TRIGGER trg_permissions_audit AFTER INSERT OR UPDATE OR DELETE ON permissions
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail('permissions');
CREATE OR REPLACE TRIGGER trg_role_permissions_audit AFTER INSERT OR UPDATE OR DELETE ON role_permissions
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail('role_permissions');
CREATE OR REPLACE TRIGGER trg_user_roles_audit AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH ROW EXECUTE FUNCTION collex_audit_trail('user_roles');

-- The trail of a business is that business's: the same predicate as the generated policies.
ALTER TABLE audit_trail ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS collex_business_isolation ON audit_trail;
CREATE POLICY collex_business_isolation ON audit_trail
    USING (business_id = NULLIF(current_setting('app.business_id', true), '')::uuid
           OR current_setting('app.all_businesses', true) = 'on');
