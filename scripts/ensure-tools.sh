#!/usr/bin/env bash
# Installs what scripts/tools.list says `make test` / `make bench` need and this machine lacks, announcing each
# install with a banner. A tool that is there costs a `command -v`. When something cannot be installed (not
# root and no password-less sudo, no network, apt-get failing) it fails naming what to install: never skips.
#
#   scripts/ensure-tools.sh test            every tool of the group `test` (make test)
#   scripts/ensure-tools.sh bench           every tool of the group `bench` (make bench)
#   scripts/ensure-tools.sh TOOL...         these tools only (e.g. pgbouncer)
#
# Tools of METHOD deb land in the tool cache (COLLEX_TOOLS_CACHE; /var/cache/collex-db/tools as root,
# ~/.cache/collex-db/tools otherwise) with a launcher in its bin/, which make test puts on PATH.
# COLLEX_TOOLS_LIST reads another list (scripts/test-tools.sh uses one).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

LIST=${COLLEX_TOOLS_LIST:-$COLLEX_ROOT/scripts/tools.list}
CACHE=$(tools_cache)
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600)

CLEANUP=()
APT_LOG=$(mktemp --suffix=.log "${TMPDIR:-/tmp}/collex-ensure-tools.XXXXXX")
# The apt log stays when something failed, for the error message that points at it.
on_exit() {
  local code=$?
  rm -rf "${CLEANUP[@]}"
  if [ "$code" = 0 ] || [ ! -s "$APT_LOG" ]; then rm -f "$APT_LOG"; fi
}
trap on_exit EXIT

[ $# -gt 0 ] || die "usage: scripts/ensure-tools.sh GROUP|TOOL... (groups: test, bench; tools: see scripts/tools.list)"

present() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "$CACHE/bin/$1" ] ;;
  esac
}

banner() {
  echo "================================================================================"
  printf 'ensure-tools: INSTALLING %s\n' "$1"
  printf '  %s\n' "${@:2}"
  echo "================================================================================"
}

# Root runs apt-get itself; anyone else needs password-less sudo, else we say what to run.
SUDO=()
can_root() {
  if [ "$(id -u)" = 0 ]; then return 0; fi
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n); return 0; fi
  return 1
}

# apt-get's own output goes to a log shown only when it fails: the banner says what happens.
quietly() {
  if "$@" >>"$APT_LOG" 2>&1; then return 0; fi
  echo "ensure-tools: '$*' failed; the end of its output ($APT_LOG):" >&2
  tail -n 15 "$APT_LOG" >&2
  return 1
}

apt_update_once() {
  [ "${UPDATED:-no}" = yes ] && return 0
  UPDATED=yes
  echo "ensure-tools: apt-get update (the package lists may be missing or stale)"
  quietly "${SUDO[@]}" apt-get update -q -o DPkg::Lock::Timeout=600
}

cannot() { # what, how-to-install, reason, needed-for
  cat >&2 <<MSG
error: $1: missing, and could not be installed ($3).
  Install it yourself: $2
  Needed for: $4 (nothing that needs it is skipped).
MSG
  exit 1
}

whys() { printf '%s' "${WHYS[0]}"; [ ${#WHYS[@]} -lt 2 ] || printf '; %s' "${WHYS[@]:1}"; }

install_apt() { # tool... with APT_PKGS_<i> set
  local pkgs=("$@") start=$SECONDS
  can_root || cannot "${pkgs[*]}" "sudo apt-get install --no-install-recommends ${pkgs[*]}" "not root, and sudo asks for a password or is missing" "$(whys)"
  banner "${pkgs[*]} with apt-get" "apt-get install --no-install-recommends ${pkgs[*]}" "for: $(whys)"
  if ! quietly "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "${pkgs[@]}"; then
    { apt_update_once && quietly "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "${pkgs[@]}"; } ||
      cannot "${pkgs[*]}" "apt-get install --no-install-recommends ${pkgs[*]}" "apt-get failed, output above: no network or no such package" "$(whys)"
  fi
  echo "ensure-tools: installed ${pkgs[*]} in $((SECONDS - start)) s"
}

# apt-get download + dpkg -x into the cache, a launcher in $CACHE/bin that finds the extracted libraries.
install_deb() { # tool packages(comma) why
  local tool=$1 pkgs why=$3 tmp exe libs start=$SECONDS
  IFS=, read -r -a pkgs <<<"$2"
  mkdir -p "$CACHE/bin"
  exec 8>"$CACHE/.lock"
  flock 8
  if [ -x "$CACHE/bin/$tool" ]; then return 0; fi # another run installed it while we waited
  banner "$tool from Debian's ${pkgs[*]} .deb into $CACHE (no system install, no service)" \
    "apt-get download ${pkgs[*]} && dpkg -x" "for: $why"
  tmp=$(mktemp -d "$CACHE/.new-$tool.XXXXXX")
  CLEANUP+=("$tmp")
  # As root, apt-get download writes through its sandbox user _apt: let it.
  if [ "$(id -u)" = 0 ] && id -u _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
  if ! (cd "$tmp" && quietly apt-get download -q "${pkgs[@]}"); then
    { can_root && apt_update_once && (cd "$tmp" && quietly apt-get download -q "${pkgs[@]}"); } || {
      cannot "$tool" "apt-get download ${pkgs[*]} (or apt-get install ${pkgs[0]})" "apt-get download failed, output above: no network, or stale package lists and no root for apt-get update" "$why"
    }
  fi
  mkdir "$tmp/root"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/root"; done
  exe=$(find "$tmp/root"/{usr/sbin,usr/bin,sbin,bin} -maxdepth 1 -type f -name "$tool" -perm -u+x 2>/dev/null | head -n1 || true)
  [ -n "$exe" ] || { die "the packages ${pkgs[*]} hold no executable named $tool"; }
  rm -rf "${CACHE:?}/$tool"
  mv "$tmp/root" "$CACHE/$tool"
  exe=$CACHE/$tool/${exe#"$tmp/root/"}
  libs=$(find "$CACHE/$tool" \( -type f -o -type l \) -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd: -)
  cat >"$CACHE/bin/$tool.new" <<SH
#!/bin/sh
# Written by scripts/ensure-tools.sh: $tool from Debian's ${pkgs[*]}, extracted with dpkg -x.
LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$exe" "\$@"
SH
  chmod 755 "$CACHE/bin/$tool.new"
  chmod -R a+rX "$CACHE"
  if ! "$CACHE/bin/$tool.new" --version >/dev/null 2>"$tmp/err"; then
    cat "$tmp/err" >&2
    die "$tool from ${pkgs[*]} does not run (output above; a library missing? ldd $exe)"
  fi
  mv "$CACHE/bin/$tool.new" "$CACHE/bin/$tool"
  echo "ensure-tools: $tool ready in $((SECONDS - start)) s: $("$CACHE/bin/$tool" --version 2>&1 | head -n1)"
}

# Which lines of the list the arguments select.
SEL_TOOL=() SEL_METHOD=() SEL_PKGS=() SEL_WHY=()
while read -r tool groups method pkgs why; do
  case "$tool" in '' | '#'*) continue ;; esac
  for want in "$@"; do
    if [ "$want" = "$tool" ] || [ "$want" = "$(basename "$tool")" ] || [[ ",$groups," == *",$want,"* ]]; then
      SEL_TOOL+=("$tool"); SEL_METHOD+=("$method"); SEL_PKGS+=("$pkgs"); SEL_WHY+=("$why")
      break
    fi
  done
done <"$LIST"
[ ${#SEL_TOOL[@]} -gt 0 ] || die "no tool or group named '$*' in $LIST"

APT_PKGS=()
WHYS=()
for i in "${!SEL_TOOL[@]}"; do
  present "${SEL_TOOL[$i]}" && continue
  case "${SEL_METHOD[$i]}" in
    apt)
      IFS=, read -r -a p <<<"${SEL_PKGS[$i]}"
      APT_PKGS+=("${p[@]}")
      WHYS+=("$(basename "${SEL_TOOL[$i]}"): ${SEL_WHY[$i]}")
      ;;
    deb) install_deb "${SEL_TOOL[$i]}" "${SEL_PKGS[$i]}" "${SEL_WHY[$i]}" ;;
    *) die "$LIST: unknown method '${SEL_METHOD[$i]}' for ${SEL_TOOL[$i]} (expected apt or deb)" ;;
  esac
done
[ ${#APT_PKGS[@]} -eq 0 ] || install_apt "${APT_PKGS[@]}"

missing=()
for t in "${SEL_TOOL[@]}"; do present "$t" || missing+=("$t"); done
[ ${#missing[@]} -eq 0 ] || die "still missing after installing: ${missing[*]}"
