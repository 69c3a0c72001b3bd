# collex-db: every command a user types. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help run test lint fmt migrate migrate-status migrate-create migrate-rollback types bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

run: ## build and start the service (SQLite ./collex.db unless DATABASE_URL or DB_* say otherwise)
	$(CARGO) run -p service-bin --bin service

test: ## every test: unit, SQLite, and real PostgreSQL at TEST_DATABASE_URL
	@bash scripts/ensure-postgres.sh
	$(CARGO) build --workspace --bins
	$(CARGO) run -q -p service-bin --bin export_types -- --check
	$(CARGO) test --workspace --no-fail-fast
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint: ## fmt check and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

types: ## regenerate the TypeScript bindings in bindings/ from the Rust types (commit the result)
	$(CARGO) run -q -p service-bin --bin export_types

# The migration CLI, with the service's database configuration (DATABASE_URL, else DB_*, else SQLite ./collex.db).
MIGRATION ?= $(CARGO) run -q -p migration --bin migration --

migrate: ## apply every pending migration
	$(MIGRATION) up

migrate-status: ## show applied and pending migrations, problems and schema drift (CHECK=1: exit 3 unless all is well)
	$(MIGRATION) status $(if $(CHECK),--check)

migrate-create: ## create NNN_<description>.sql + NNN_rollback.sql (DESC="..." or asks; FROM_ENTITIES=1 writes the entity diff)
	@desc="$${DESC:-}"; \
	if [ -z "$$desc" ]; then read -r -p "Enter description: " desc; fi; \
	$(MIGRATION) create "$$desc" $(if $(FROM_ENTITIES),--from-entities)

migrate-rollback: ## roll back the latest migration, or VERSION=NNN and everything above it, newest first
	@if [ -n "$(VERSION)" ]; then \
		$(MIGRATION) down --through "$(VERSION)"; \
	else \
		$(MIGRATION) down; \
	fi

BENCH_TARGET := $(or $(CARGO_TARGET_DIR),target)
bench: ## release build, then every benchmark against fresh PostgreSQL databases; table + bench/results.json
	@bash scripts/ensure-postgres.sh
	@bash bench/tools.sh
	$(CARGO) build --release -p collex-bench -p migration -p service-bin --bin collex-bench --bin migration --bin service
	$(BENCH_TARGET)/release/collex-bench run --bin-dir $(BENCH_TARGET)/release --out bench/results.json --markdown bench/results.md
