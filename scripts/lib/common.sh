# shellcheck shell=bash
# Shared by the scripts under scripts/: where the test servers and the tool cache live, how to run a server
# program as an unprivileged user, free ports, and stopping a process found through its pid file without
# ever signalling a process that is not ours. Sourced, never run; it defines functions and variables only.

COLLEX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# How long pg-pair.sh and pgbouncer.sh wait for another run's lock on the same pair (seconds).
# shellcheck disable=SC2034 # read by the scripts that source this file
LOCK_WAIT=${COLLEX_PAIR_LOCK_WAIT:-300}

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# One pair (and its poolers) per checkout, at a place a later run finds again, so `down` cleans up after a
# run that crashed. COLLEX_PAIR_DIR chooses another place (a second pair, or a test's own).
pair_dir() {
  if [ -n "${COLLEX_PAIR_DIR:-}" ]; then
    printf '%s\n' "$COLLEX_PAIR_DIR"
  else
    printf '%s/collex-pg-pair-%s\n' "${TMPDIR:-/tmp}" "$(printf '%s' "$COLLEX_ROOT" | sha256sum | cut -c1-12)"
  fi
}

# Where tools fetched as .deb files are extracted: outside the checkout and the cargo target dir, so
# `cargo clean` and a fresh clone keep them, and readable by the unprivileged server user when we are root.
tools_cache() {
  if [ -n "${COLLEX_TOOLS_CACHE:-}" ]; then
    printf '%s\n' "$COLLEX_TOOLS_CACHE"
  elif [ "$(id -u)" = 0 ]; then
    printf '/var/cache/collex-db/tools\n'
  else
    printf '%s/collex-db/tools\n' "${XDG_CACHE_HOME:-$HOME/.cache}"
  fi
}

# initdb and PgBouncer refuse to run as root: as root, run them as the `postgres` user.
server_user() {
  if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 || die "running as root and there is no 'postgres' user to run the servers as (initdb refuses root); create one or run as an ordinary user"
    printf 'postgres\n'
  else
    id -un
  fi
}

as_server() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A port nothing on 127.0.0.1 listens on now and not in the exclusion list. Another program may still
# take it before we bind: callers retry with a new port when the bind fails.
pick_port() {
  local p tries=0
  while [ $tries -lt 200 ]; do
    tries=$((tries + 1))
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    case " $* " in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  die "found no free TCP port on 127.0.0.1 after 200 tries"
}

# The pid in a pid file when that process is alive and its command line names `marker` (a data directory or a
# config file of ours): a stale pid file whose number the kernel gave to another process yields nothing.
live_pid() {
  local file=$1 marker=$2 pid
  [ -f "$file" ] || return 1
  pid=$(head -n1 "$file" 2>/dev/null | tr -dc '0-9')
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  printf '%s\n' "$pid"
}

# Signals the process (TERM, then KILL after `grace` seconds) and waits until it is gone.
stop_pid() {
  local pid=$1 grace=${2:-10} i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}
