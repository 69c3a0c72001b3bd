# collex-db: every command a user types. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

# One build serves every target: `cargo build --workspace --bins` (the workspace's features), and the targets run
# the binaries it left in the target directory. `cargo run -p X` would build X with X's own features and
# rebuild half the dependency tree for it.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BIN := $(TARGET_DIR)/debug

.PHONY: help build run test test-suites lint fmt migrate migrate-status migrate-create migrate-rollback types bench
.PHONY: backup backups restore db-create db-drop

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

build: ## build every binary of the workspace (what run, test, migrate and types use)
	@echo "building the workspace binaries: $(CARGO) build --workspace --bins (only what changed; from scratch, several minutes)"
	@$(CARGO) build --workspace --bins

run: build ## build and start the service (SQLite ./collex.db unless DATABASE_URL or DB_* say otherwise)
	$(BIN)/service

test: ## every test: unit, SQLite, real PostgreSQL at TEST_DATABASE_URL, the replica pair and PgBouncer
	@bash scripts/ensure-tools.sh test
	@bash scripts/test-tools.sh
	@bash scripts/ensure-postgres.sh
	@$(MAKE) --no-print-directory build
	@bash scripts/test-make.sh
	@bash scripts/test-lifecycle.sh
	@bash scripts/test-alerts.sh
	@bash scripts/with-test-servers.sh $(MAKE) --no-print-directory test-suites
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The part of `make test` that needs the test servers; scripts/with-test-servers.sh brings them up around it.
test-suites:
	bash scripts/test-pair.sh
	$(BIN)/export_types --check
	$(CARGO) test --workspace --no-fail-fast

lint: ## fmt check and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

types: build ## regenerate the TypeScript bindings in bindings/ from the Rust types (commit the result)
	$(BIN)/export_types

# The migration CLI, with the service's database configuration (DATABASE_URL, else DB_*, else SQLite ./collex.db).
MIGRATION ?= $(BIN)/migration

migrate: build ## apply every pending migration
	$(MIGRATION) up

migrate-status: build ## show applied and pending migrations, problems and schema drift (CHECK=1: exit 3 unless all is well)
	$(MIGRATION) status $(if $(CHECK),--check)

migrate-create: build ## create NNN_<description>.sql + NNN_rollback.sql (DESC="..." or asks; FROM_ENTITIES=1 writes the entity diff)
	@desc="$${DESC:-}"; \
	if [ -z "$$desc" ]; then read -r -p "Enter description: " desc; fi; \
	$(MIGRATION) create "$$desc" $(if $(FROM_ENTITIES),--from-entities)

migrate-rollback: build ## roll back the latest migration, or VERSION=NNN and everything above it, newest first
	@if [ -n "$(VERSION)" ]; then \
		$(MIGRATION) down --through "$(VERSION)"; \
	else \
		$(MIGRATION) down; \
	fi

db-create: build ## create the configured database (PostgreSQL database or SQLite file); nothing to do when it exists
	$(MIGRATION) database create

db-drop: build ## drop the configured database with everything in it (asks first; YES=1 does not ask)
	$(MIGRATION) database drop $(if $(YES),--yes)

backup: build ## snapshot the database into DB_BACKUP_DIR (default backups/): pg_dump -Fc or VACUUM INTO, with a manifest
	$(MIGRATION) backup

backups: build ## list the snapshots in DB_BACKUP_DIR with their schema versions
	$(MIGRATION) backups

restore: build ## restore FILE=backups/<snapshot> after checking its checksum (asks first; YES=1 does not ask)
	@if [ -z "$(FILE)" ]; then echo "usage: make restore FILE=backups/<snapshot file> (make backups lists them)" >&2; exit 2; fi
	$(MIGRATION) restore "$(FILE)" $(if $(YES),--yes)

bench: ## release build, then every benchmark against fresh PostgreSQL databases; table + bench/results.json
	@bash scripts/ensure-postgres.sh
	@if [ "$${BENCH_INSTALL:-1}" != 0 ]; then bash scripts/ensure-tools.sh bench; fi
	@bash bench/tools.sh
	@echo "building the release binaries of the bench: collex-bench, migration, service"
	$(CARGO) build --release -p collex-bench -p migration -p service-bin --bin collex-bench --bin migration --bin service
	$(TARGET_DIR)/release/collex-bench run --bin-dir $(TARGET_DIR)/release --out bench/results.json --markdown bench/results.md
