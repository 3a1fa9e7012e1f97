#!/usr/bin/env bash
# Benchmarks against the peers, in one command: installs what they need (Debian's
# prometheus-mysqld-exporter, prometheus-postgres-exporter and wrk, plus the test servers), starts MariaDB and
# seekdb on loopback, builds the release binaries, runs bench/bench.py and rewrites
# BENCHMARKS.md. `--quick` takes about 12 minutes; the full run soaks 10 minutes and runs longer.
# `--before BINARY` adds scenario 3e: CPU per collection cycle against another build
# (e.g. the commit before a refactoring). Exits non-zero if a goal is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
need=()
command -v prometheus-mysqld-exporter >/dev/null 2>&1 || need+=(prometheus-mysqld-exporter)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v prometheus-postgres-exporter >/dev/null 2>&1 || need+=(prometheus-postgres-exporter)
command -v prometheus-pgbouncer-exporter >/dev/null 2>&1 || need+=(prometheus-pgbouncer-exporter)
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
eval "$(bash scripts/test-servers.sh start)"
cargo build --release --locked --bin session_exporter --example http_limit --example hold_sessions --example history_store
exec python3 bench/bench.py "$@"
