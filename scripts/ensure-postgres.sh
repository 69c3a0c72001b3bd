#!/usr/bin/env bash
# Makes sure the PostgreSQL that the tests use answers at TEST_DATABASE_URL.
# Starts the local Debian cluster when it is installed but stopped; otherwise fails loudly with what to do.
set -euo pipefail
url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
shown=$(printf '%s' "$url" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#')

answers() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -d "$url" -t 3; }
answers_psql() { command -v psql >/dev/null 2>&1 && psql "$url" -qAtc 'select 1' >/dev/null 2>&1; }

if answers || answers_psql; then
  echo "PostgreSQL answers at $shown"
  exit 0
fi

if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  started=no
  for dir in /etc/postgresql/*/; do
    ver=$(basename "$dir")
    if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
      echo "local cluster $ver/main is already running (but not answering at $shown)"
      continue
    fi
    echo "PostgreSQL not answering at $shown; starting local cluster $ver/main"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start && started=yes
  done
  if [ "$started" = yes ]; then
    for _ in $(seq 1 30); do
      if answers || answers_psql; then echo "PostgreSQL answers at $shown"; exit 0; fi
      sleep 1
    done
  fi
fi

cat >&2 <<MSG
error: PostgreSQL is not reachable at TEST_DATABASE_URL=$shown
  The tests need a real PostgreSQL (15 or newer) where the user may CREATE DATABASE.
  Install it (Debian: apt-get install postgresql) or start yours, or set TEST_DATABASE_URL.
  The PostgreSQL tests are never skipped.
MSG
exit 1
