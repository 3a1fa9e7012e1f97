#!/usr/bin/env bash
# Installs every server and tool the tests need on a fresh Debian machine:
# MariaDB and Prometheus (promtool) from Debian's packages, seekdb from PyPI's
# `pylibseekdb`. Idempotent: a second run finds everything present and does nothing.
set -euo pipefail

need_apt=()
command -v mariadbd >/dev/null 2>&1 || need_apt+=(mariadb-server mariadb-client)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  echo "install-deps: apt-get install ${need_apt[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import pylibseekdb' >/dev/null 2>&1; then
  echo "install-deps: pip install pylibseekdb" >&2
  python3 -m pip install -q pylibseekdb
fi
