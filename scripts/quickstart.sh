#!/usr/bin/env bash
# Quick start: installs and starts a local MariaDB and seekdb (loopback only), writes
# a config for both, builds the exporter and runs it on http://127.0.0.1:9767/metrics
# ($SE_QUICKSTART_LISTEN to change it).
# Ctrl-C stops the exporter; `scripts/test-servers.sh stop` stops the databases.
#
# The build is the longest step and mostly CPU; installing and starting the servers is
# mostly network and disk: the two run side by side. It is cargo's dev profile, the
# one `scripts/test.sh` builds on, so the tests afterwards reuse every dependency
# built here; a production binary comes from `cargo build --release` or
# scripts/package.sh (docs/operating.md).
set -euo pipefail
cd "$(dirname "$0")/.."

listen=${SE_QUICKSTART_LISTEN:-127.0.0.1:9767}
dir=${SE_IT_DIR:-/tmp/session-exporter-it}
mkdir -p "$dir"
build_log=$dir/quickstart-build.log
echo "quickstart: building the exporter in the background (log: $build_log)" >&2
cargo build --locked --bin session_exporter >"$build_log" 2>&1 &
build_pid=$!
# Whatever ends this script early ends the build it started, and only that.
trap 'kill "$build_pid" 2>/dev/null || true' EXIT

bash scripts/install-deps.sh --quickstart
eval "$(bash scripts/test-servers.sh start mariadb seekdb)"

echo "quickstart: servers up; waiting for the build" >&2
if ! wait "$build_pid"; then
  tail -n 40 "$build_log" >&2
  echo "quickstart: the build failed; the whole log is $build_log" >&2
  exit 1
fi
trap - EXIT

config=$dir/quickstart.yaml
cat > "$config" <<YAML
global:
  collect_interval: 5s
  collect_timeout: 2s
targets:
  - name: mariadb
    kind: mysql
    address: $SE_TEST_MARIADB_ADDR
    user: monitor
    password_file: $SE_TEST_MONITOR_PASSWORD_FILE
  - name: seekdb
    kind: oceanbase
    address: $SE_TEST_SEEKDB_ADDR
    user: monitor
    password_file: $SE_TEST_MONITOR_PASSWORD_FILE
history:
  path: $dir/history.db
YAML
cat >&2 <<MSG

quickstart: config written to $config
quickstart: metrics at http://$listen/metrics, overview at http://$listen/
quickstart: open sessions to watch them counted, e.g.
  mariadb --no-defaults -h127.0.0.1 -P${SE_TEST_SEEKDB_ADDR##*:} -uroot --skip-ssl -e 'SELECT SLEEP(60)'

MSG
# Built above: cargo only checks that it is up to date.
exec cargo run --locked --quiet --bin session_exporter -- \
  --config.file "$config" --web.listen-address "$listen"
