#!/usr/bin/env bash
# Tests of scripts/ensure-tools.sh through its command line, as make test runs it: a tool that is there costs
# nothing and installs nothing; a missing tool that cannot be installed (no root, a package apt cannot
# fetch) fails with exit 1 naming what to install, and never passes silently. Runs the failing cases as the
# unprivileged `nobody` user with a list of its own, so nothing is installed on this machine. Prints a
# cargo-style `test result:` line that .ci/run counts.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
SUITE=tools
# shellcheck source=scripts/lib/testing.sh
. "$here/lib/testing.sh"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
cat >"$dir/tools.list" <<'LIST'
bash                          present  apt  bash                        a tool every machine has
collex-no-such-tool           apt      apt  collex-no-such-package      a missing tool from apt
collex-no-such-deb-tool       deb      deb  collex-no-such-package-deb  a missing tool from a .deb
LIST
mkdir "$dir/cache"

as_user() { # run ensure-tools as `nobody` when we are root (so it cannot install), else as ourselves
  if [ "$(id -u)" = 0 ]; then
    chown -R nobody "$dir/cache"
    runuser -u nobody -- env COLLEX_TOOLS_LIST="$dir/tools.list" COLLEX_TOOLS_CACHE="$dir/cache" TMPDIR="$dir/cache" \
      bash "$here/ensure-tools.sh" "$@"
  else
    env COLLEX_TOOLS_LIST="$dir/tools.list" COLLEX_TOOLS_CACHE="$dir/cache" TMPDIR="$dir/cache" bash "$here/ensure-tools.sh" "$@"
  fi
}

out=$(COLLEX_TOOLS_LIST="$dir/tools.list" bash "$here/ensure-tools.sh" present 2>&1)
code=$?
check present_tool_installs_nothing "exit $code: $out" test "$code" = 0 -a -z "$out"

out=$(as_user apt 2>&1)
code=$?
if [ $code = 1 ] && [[ $out == *"collex-no-such-package: missing, and could not be installed (not root"* ]] &&
  [[ $out == *"apt-get install --no-install-recommends collex-no-such-package"* ]]; then
  ok missing_apt_tool_without_root_fails_naming_the_package
else
  fail missing_apt_tool_without_root_fails_naming_the_package "exit $code: $out"
fi

out=$(as_user deb 2>&1)
code=$?
if [ $code = 1 ] && [[ $out == *"INSTALLING collex-no-such-deb-tool"* ]] &&
  [[ $out == *"collex-no-such-deb-tool: missing, and could not be installed (apt-get download failed"* ]] &&
  [[ $out == *"apt-get download collex-no-such-package-deb"* ]] && [ ! -e "$dir/cache/bin/collex-no-such-deb-tool" ]; then
  ok unfetchable_deb_tool_fails_naming_the_package
else
  fail unfetchable_deb_tool_fails_naming_the_package "exit $code: $out"
fi

out=$(as_user no-such-group 2>&1)
code=$?
if [ $code = 1 ] && [[ $out == *"no tool or group named 'no-such-group'"* ]]; then
  ok unknown_group_is_an_error
else
  fail unknown_group_is_an_error "exit $code: $out"
fi

finish
