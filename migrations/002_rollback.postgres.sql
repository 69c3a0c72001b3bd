-- Rollback Migration: Updated At Trigger
-- Version: 002
-- Description: Rollback keep updated_at current on every update, raw SQL included
-- Created: 2026-11-27T03:30:00Z

-- CASCADE drops every trigger that uses the function.
DROP FUNCTION IF EXISTS collex_set_updated_at() CASCADE;
