#!/usr/bin/env bash
# Installs every server and tool the tests need on a fresh Debian machine:
# MariaDB, PostgreSQL, PgBouncer, Prometheus (promtool), curl, systemd-analyze, and for the packages
# and the image rpm, podman with runc, mmdebstrap and man-db, from Debian's
# packages;
# seekdb (`pylibseekdb`), `kubernetes-validate` and `schemathesis` from PyPI; for the sessions
# page's tests in a real browser, Debian's chromium and chromium-driver, Selenium from PyPI in
# a virtual environment of its own and axe-core from the npm registry (both under
# $SE_BROWSER_TOOLS, by default ~/.cache/session-exporter/browser). Idempotent: a second
# run finds everything present and does nothing.
# `--quickstart` installs only what scripts/quickstart.sh runs: MariaDB and seekdb.
set -euo pipefail

only_quickstart=0
case "${1:-}" in
  "") ;;
  --quickstart) only_quickstart=1 ;;
  *) echo "usage: $0 [--quickstart]" >&2; exit 2 ;;
esac

need_apt=()
command -v mariadbd >/dev/null 2>&1 || need_apt+=(mariadb-server mariadb-client)
if [ "$only_quickstart" = 0 ]; then
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
  command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null 2>&1 || need_apt+=(pgbouncer)
  command -v rpm >/dev/null 2>&1 || need_apt+=(rpm)
  # runc, not crun: crun refuses this kind of machine's hybrid cgroups (tests/it/packages/).
  command -v podman >/dev/null 2>&1 || need_apt+=(podman)
  command -v runc >/dev/null 2>&1 || need_apt+=(runc)
  command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
  # `man`: the installed package's man page is looked up as users (and systemd-analyze) do.
  command -v man >/dev/null 2>&1 || need_apt+=(man-db)
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
  command -v npm >/dev/null 2>&1 || need_apt+=(npm)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  echo "install-deps: apt-get install ${need_apt[*]}" >&2
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

need_pip=()
python3 -c 'import pylibseekdb' >/dev/null 2>&1 || need_pip+=(pylibseekdb)
if [ "$only_quickstart" = 0 ]; then
  # Validates deploy/kubernetes against the Kubernetes JSON schemas it ships.
  command -v kubernetes-validate >/dev/null 2>&1 || need_pip+=(kubernetes-validate)
  # Fuzzes the session API against docs/openapi.yaml (tests/it/schemathesis.rs); pinned,
  # since its command line changes between major versions.
  # hypothesis is pinned with it: later releases break schemathesis 3's generators.
  command -v schemathesis >/dev/null 2>&1 || need_pip+=(schemathesis==3.39.16 hypothesis==6.123.2)
  # obshell's own Python SDK, which tests/it/obshell_sdk.rs drives unchanged.
  python3 -c 'import obshell' >/dev/null 2>&1 || need_pip+=(obshell==0.0.9)
fi
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "install-deps: pip install ${need_pip[*]}" >&2
  python3 -m pip install -q --root-user-action=ignore "${need_pip[@]}"
fi

if [ "$only_quickstart" = 0 ]; then
  # Selenium pins typing_extensions, so it lives in a virtual environment of its own;
  # 4.35.0 is the last release whose certifi pin the registry serves.
  browser_tools="${SE_BROWSER_TOOLS:-$HOME/.cache/session-exporter/browser}"
  if ! "$browser_tools/venv/bin/python" -c 'import selenium' >/dev/null 2>&1; then
    echo "install-deps: selenium==4.35.0 into $browser_tools/venv" >&2
    python3 -m venv "$browser_tools/venv"
    "$browser_tools/venv/bin/python" -m pip install -q selenium==4.35.0
  fi
  # axe-core's one file, injected into the page by tests/it/browser/browser.py.
  if [ ! -f "$browser_tools/axe-core/axe.min.js" ]; then
    echo "install-deps: axe-core@4.14.1 into $browser_tools/axe-core" >&2
    mkdir -p "$browser_tools/axe-core"
    (cd "$browser_tools" && npm pack --silent axe-core@4.14.1 >/dev/null \
      && tar -xzf axe-core-4.14.1.tgz -C axe-core --strip-components=1 package/axe.min.js \
      && rm -f axe-core-4.14.1.tgz)
  fi
fi
