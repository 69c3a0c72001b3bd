-- Rollback Migration: Create Audit Tables
-- Version: 003
-- Description: Rollback create the audit trail
-- Created: 2026-11-27T03:30:00Z

-- CASCADE drops the triggers that use the function.
DROP FUNCTION IF EXISTS collex_audit_trail() CASCADE;
DROP TABLE IF EXISTS audit_trail;
