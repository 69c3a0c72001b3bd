#!/usr/bin/env bash
# The shipped monitoring in deploy/: `promtool check rules` and `promtool test rules` on the Prometheus alert
# rules, every alert fired by a unit test, the Grafana dashboard's JSON, and every series the rules and the
# dashboard query rendered by the service's /metrics (its names are in service/src). Fails, never skips, when
# promtool is missing (scripts/ensure-tools.sh test installs it). Prints a cargo-style `test result:` line.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$here")
SUITE=alerts
# shellcheck source=scripts/lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=scripts/lib/testing.sh
. "$here/lib/testing.sh"
PATH="$(tools_cache)/bin:$PATH"
export PATH

rules="$root/deploy/prometheus/alerts.yml"
tests="$root/deploy/prometheus/alerts.test.yml"
board="$root/deploy/grafana/collex-db.json"

if ! command -v promtool >/dev/null; then
  fail promtool_present "promtool not found: run scripts/ensure-tools.sh test (Debian package prometheus)"
  finish
fi
ok promtool_present

out=$(promtool check rules "$rules" 2>&1)
check check_rules "$out" test $? = 0
out=$(cd "$(dirname "$tests")" && promtool test rules "$(basename "$tests")" 2>&1)
check test_rules "$out" test $? = 0

# Every alert has a test case in which it fires (an alert_rule_test with non-empty exp_alerts).
missing=""
for alert in $(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules"); do
  if ! awk -v a="$alert" '$1 == "alertname:" && $2 == a { getline; if ($1 == "exp_alerts:" && $2 != "[]") found = 1 } END { exit !found }' "$tests"; then
    missing="$missing $alert"
  fi
done
check every_alert_fires_in_a_test "alerts without a firing test:$missing" test -z "$missing"

out=$(node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$board" 2>&1)
check dashboard_is_json "$out" test $? = 0

# The series the rules and the dashboard query are ones the service renders.
unknown=""
for name in $(grep -ohE '\b(db_client|collex|http_server|process)_[a-z_]+' "$rules" "$board" | sort -u); do
  base=${name%_bucket}
  base=${base%_count}
  base=${base%_sum}
  if ! grep -rqF "\"$base" "$root/service/src" && ! grep -rqF "$base{" "$root/service/src" && ! grep -rqF "$base " "$root/service/src"; then
    unknown="$unknown $name"
  fi
done
check queried_series_exist "series the service does not render:$unknown" test -z "$unknown"

finish
