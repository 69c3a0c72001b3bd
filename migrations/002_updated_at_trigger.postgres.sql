-- Migration: Updated At Trigger
-- Version: 002
-- Description: keep updated_at current on every update, raw SQL included
-- Created: 2026-11-27T03:30:00Z
--
-- Hand-written, PostgreSQL only. SQLite has no variant of this version: there the application stamps
-- updated_at (entity hooks and repository), and version 002 is recorded with nothing to run.

-- An update that leaves updated_at as it was gets the transaction's time. An update that sets it (the
-- entity code stamps every write) keeps its value, so the row and the model the application got back agree.
CREATE OR REPLACE FUNCTION collex_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;

-- Every table that has an updated_at column now. Tables created later get their trigger from the generated
-- CREATE TABLE (migration::schema::ddl::updated_at_trigger_pg), which attaches it once this function exists.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.table_name
        FROM information_schema.columns c
        JOIN information_schema.tables t
          ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE c.table_schema = current_schema()
          AND c.column_name = 'updated_at'
          AND t.table_type = 'BASE TABLE'
    LOOP
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION collex_set_updated_at()',
            'trg_' || r.table_name || '_updated_at',
            r.table_name
        );
    END LOOP;
END
$$;
