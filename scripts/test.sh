#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests against real MariaDB, seekdb and
# PostgreSQL servers, promtool, and the .deb, .rpm and image built and used for real.
# Installs what is missing (Debian packages, PyPI packages, the packaging tools
# of scripts/package.sh) and starts the servers on loopback; servers this run started are
# stopped at the end unless SE_KEEP_SERVERS=1 (keeping them makes the next run start in
# a second).
# Extra arguments go to `cargo test`, e.g. `./scripts/test.sh --test mariadb`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
started_here=0
bash scripts/test-servers.sh status || started_here=1
eval "$(bash scripts/test-servers.sh start)"
if [ "$started_here" = 1 ] && [ "${SE_KEEP_SERVERS:-0}" != 1 ]; then
  trap 'bash scripts/test-servers.sh stop' EXIT
fi

# The whole suite builds, installs and runs the packages (tests/it/packages.rs): make
# their release build first, so that it does not compete with the other tests for
# the CPU. (Run alone, the package tests make it themselves.)
if [ $# -eq 0 ]; then
  bash scripts/package.sh --build-only
fi
cargo test --locked "$@"
