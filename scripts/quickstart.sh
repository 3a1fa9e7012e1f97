#!/usr/bin/env bash
# Quick start: installs and starts a local MariaDB and seekdb (loopback only), writes
# a config for both, builds the exporter and runs it on http://127.0.0.1:9767/metrics.
# Ctrl-C stops the exporter; `scripts/test-servers.sh stop` stops the databases.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
eval "$(bash scripts/test-servers.sh start)"
dir=${SE_IT_DIR:-/tmp/session-exporter-it}
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
YAML
cat >&2 <<MSG

quickstart: config written to $config
quickstart: metrics at http://127.0.0.1:9767/metrics, overview at http://127.0.0.1:9767/
quickstart: open sessions to watch them counted, e.g.
  mariadb --no-defaults -h127.0.0.1 -P${SE_TEST_SEEKDB_ADDR##*:} -uroot --skip-ssl -e 'SELECT SLEEP(60)'

MSG
exec cargo run --release --locked -- --config.file "$config" --web.listen-address 127.0.0.1:9767
