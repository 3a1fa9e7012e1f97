#!/usr/bin/env bash
# Starts (or stops) the real database servers the integration tests and the quick
# start use, on loopback only, under $SE_IT_DIR (default /tmp/session-exporter-it):
#   MariaDB on 127.0.0.1:$SE_MARIADB_PORT (33306), seekdb on 127.0.0.1:$SE_SEEKDB_PORT (32881),
#   PostgreSQL on 127.0.0.1:$SE_POSTGRES_PORT (35432; superuser `admin`, password in
#   $SE_IT_DIR/postgres/admin.password); PgBouncer on 127.0.0.1:$SE_PGBOUNCER_PORT (36432), in
#   front of that PostgreSQL: database `postgres` with pool_size 2, the application role
#   `it_pgb` (password in $SE_IT_DIR/pgbouncer/app.password) and `monitor` as a stats user.
# Idempotent: a server that already answers is left alone. Each gets a least-privilege
# account `monitor` (password in $SE_IT_DIR/monitor.password) and root stays local.
# Prints `export …` lines describing the servers, for `eval "$(… start)"`.
# Usage: scripts/test-servers.sh start|stop|status|env [mariadb] [seekdb] [postgres] [pgbouncer]
set -euo pipefail

dir=${SE_IT_DIR:-/tmp/session-exporter-it}
mariadb_port=${SE_MARIADB_PORT:-33306}
seekdb_port=${SE_SEEKDB_PORT:-32881}
postgres_port=${SE_POSTGRES_PORT:-35432}
pgbouncer_port=${SE_PGBOUNCER_PORT:-36432}
mkdir -p "$dir"
pwfile=$dir/monitor.password
[ -s "$pwfile" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$pwfile"; chmod 600 "$pwfile"; }
monitor_pw=$(cat "$pwfile")

log() { echo "test-servers: $*" >&2; }

mariadb_sql() { mariadb --no-defaults -S "$dir/mariadb/mysqld.sock" -uroot -N -B -e "$1"; }
seekdb_sql() { mariadb --no-defaults -h127.0.0.1 -P"$seekdb_port" -uroot --skip-ssl -N -B -e "$1"; }

start_mariadb() {
  local d=$dir/mariadb
  if mariadb_sql 'SELECT 1' >/dev/null 2>&1; then log "MariaDB already up on $mariadb_port"; return; fi
  mkdir -p "$d"
  if [ ! -d "$d/data/mysql" ]; then
    rm -rf "$d/data"; mkdir -p "$d/data"
    mariadb-install-db --no-defaults --datadir="$d/data" --user=root \
      --auth-root-authentication-method=socket >"$d/install.log" 2>&1
  fi
  log "starting MariaDB on 127.0.0.1:$mariadb_port"
  # wait/% includes wait/lock/metadata/sql/mdl, which names metadata lock holders.
  setsid mariadbd --no-defaults --datadir="$d/data" --user=root --port="$mariadb_port" \
    --bind-address=127.0.0.1 --socket="$d/mysqld.sock" --pid-file="$d/mysqld.pid" \
    --max-connections=2000 --skip-name-resolve --log-error="$d/error.log" \
    --performance-schema=ON --performance-schema-consumer-events-waits-current=ON \
    --performance-schema-consumer-events-statements-current=ON \
    --performance-schema-instrument='wait/%=ON' </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 120); do
    mariadb_sql 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.25
  done
  mariadb_sql 'SELECT 1' >/dev/null || { log "MariaDB did not start; see $d/error.log"; exit 1; }
  mariadb_sql "CREATE USER IF NOT EXISTS 'monitor'@'%' IDENTIFIED BY '$monitor_pw';
    ALTER USER 'monitor'@'%' IDENTIFIED BY '$monitor_pw'; GRANT PROCESS ON *.* TO 'monitor'@'%'; GRANT SELECT ON performance_schema.* TO 'monitor'@'%';"
}

seekdb_bin() {
  python3 -c 'import pylibseekdb,os;print(os.path.join(os.path.dirname(pylibseekdb.__file__),"seekdb"))'
}

start_seekdb() {
  local d=$dir/seekdb
  if seekdb_sql 'SELECT 1' >/dev/null 2>&1; then log "seekdb already up on $seekdb_port"; return; fi
  # A base dir whose first start failed cannot be reused: start from scratch unless
  # an earlier start completed (marked below).
  [ -f "$d.ok" ] || rm -rf "$d"
  mkdir -p "$d"
  log "starting seekdb on 127.0.0.1:$seekdb_port (first start takes up to a minute)"
  TELEMETRY_ENABLED=false setsid "$(seekdb_bin)" --nodaemon --base-dir "$d" --port "$seekdb_port" \
    --parameter memory_budget=2G --parameter log_disk_size=2G --parameter syslog_level=ERROR \
    --variable ob_query_timeout=3600000000 --variable time_zone=+00:00 \
    </dev/null >"$dir/seekdb.out" 2>&1 &
  echo $! > "$dir/seekdb.pid"
  for _ in $(seq 1 360); do
    seekdb_sql 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.5
  done
  seekdb_sql 'SELECT 1' >/dev/null || { log "seekdb did not start; see $dir/seekdb.out"; exit 1; }
  touch "$d.ok"
  seekdb_sql "CREATE USER IF NOT EXISTS monitor IDENTIFIED BY '$monitor_pw';
    ALTER USER monitor IDENTIFIED BY '$monitor_pw'; GRANT SELECT ON oceanbase.* TO monitor;"
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
pg_sql() {
  PGPASSWORD=$(cat "$dir/postgres/admin.password" 2>/dev/null) psql -h 127.0.0.1 -p "$postgres_port" \
    -U admin -d postgres -At -v ON_ERROR_STOP=1 -c "$1"
}
# initdb and the server refuse to run as root: as root they run as Debian's postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
  local d=$dir/postgres bin
  if pg_sql 'SELECT 1' >/dev/null 2>&1; then log "PostgreSQL already up on $postgres_port"; return; fi
  bin=$(pg_bin)
  [ -n "$bin" ] || { log "PostgreSQL is not installed: run scripts/install-deps.sh"; exit 1; }
  mkdir -p "$d"
  if [ ! -s "$d/data/PG_VERSION" ]; then
    rm -rf "$d/data"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$d/admin.password"
    chmod 600 "$d/admin.password"
    [ "$(id -u)" != 0 ] || chown -R postgres "$d"
    as_pg "$bin/initdb" -D "$d/data" -A scram-sha-256 --pwfile="$d/admin.password" -U admin \
      >"$d/initdb.log" 2>&1 || { log "initdb failed; see $d/initdb.log"; exit 1; }
    # The default allows 127.0.0.1 only; the tests connect from other loopback addresses.
    echo 'host all all 127.0.0.0/8 scram-sha-256' >> "$d/data/pg_hba.conf"
  fi
  [ "$(id -u)" != 0 ] || chown -R postgres "$d"
  log "starting PostgreSQL on 127.0.0.1:$postgres_port"
  as_pg "$bin/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 \
    -o "-p $postgres_port -k $d -c listen_addresses=127.0.0.1 -c max_connections=800 -c compute_query_id=on" start >/dev/null \
    || { log "PostgreSQL did not start; see $d/server.log"; exit 1; }
  pg_sql "DO \$\$ BEGIN CREATE ROLE monitor LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
    ALTER ROLE monitor PASSWORD '$monitor_pw'; GRANT pg_monitor TO monitor;" >/dev/null
}

stop_postgres() {
  local d=$dir/postgres bin
  bin=$(pg_bin)
  [ -n "$bin" ] && [ -s "$d/data/postmaster.pid" ] || return 0
  as_pg "$bin/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null 2>&1 || true
}

pgbouncer_sql() {
  PGPASSWORD=$monitor_pw psql -h 127.0.0.1 -p "$pgbouncer_port" -U monitor -d pgbouncer -At -c "$1"
}

# PgBouncer (it refuses to run as root: as root it runs as Debian's postgres user), in
# front of the PostgreSQL above, which must be up: its application role is made there.
start_pgbouncer() {
  local d=$dir/pgbouncer app_pw
  if pgbouncer_sql 'SHOW VERSION' >/dev/null 2>&1; then log "PgBouncer already up on $pgbouncer_port"; return; fi
  command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] \
    || { log "PgBouncer is not installed: run scripts/install-deps.sh"; exit 1; }
  status_postgres || { log "PgBouncer needs the test PostgreSQL: start postgres first"; exit 1; }
  mkdir -p "$d"
  [ -s "$d/app.password" ] || { head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$d/app.password"; chmod 600 "$d/app.password"; }
  app_pw=$(cat "$d/app.password")
  pg_sql "DO \$\$ BEGIN CREATE ROLE it_pgb LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
    ALTER ROLE it_pgb PASSWORD '$app_pw';" >/dev/null
  printf '"monitor" "%s"\n"it_pgb" "%s"\n' "$monitor_pw" "$app_pw" > "$d/userlist.txt"
  chmod 600 "$d/userlist.txt"
  cat > "$d/pgbouncer.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$postgres_port dbname=postgres pool_size=2
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgbouncer_port
unix_socket_dir = $d
auth_type = md5
auth_file = $d/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 2
; The tests end the pool's backends between them: an idle server connection is
; checked before a client gets it, so none is handed a dead one.
server_check_delay = 0
stats_users = monitor
logfile = $d/pgbouncer.log
pidfile = $d/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
INI
  [ "$(id -u)" != 0 ] || chown -R postgres "$d"
  log "starting PgBouncer on 127.0.0.1:$pgbouncer_port"
  as_pg "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d "$d/pgbouncer.ini" >/dev/null 2>&1 \
    || { log "PgBouncer did not start; see $d/pgbouncer.log"; exit 1; }
  for _ in $(seq 1 100); do
    pgbouncer_sql 'SHOW VERSION' >/dev/null 2>&1 && break
    sleep 0.1
  done
  pgbouncer_sql 'SHOW VERSION' >/dev/null || { log "PgBouncer did not answer; see $d/pgbouncer.log"; exit 1; }
}

stop_one() {
  local pidfile=$1
  [ -s "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

print_env() {
  cat <<ENV
export SE_TEST_MARIADB_ADDR=127.0.0.1:$mariadb_port
export SE_TEST_MARIADB_ROOT_SOCKET=$dir/mariadb/mysqld.sock
export SE_TEST_SEEKDB_ADDR=127.0.0.1:$seekdb_port
export SE_TEST_MONITOR_PASSWORD_FILE=$pwfile
export SE_TEST_POSTGRES_ADDR=127.0.0.1:$postgres_port
export SE_TEST_POSTGRES_ADMIN_PASSWORD_FILE=$dir/postgres/admin.password
export SE_TEST_PGBOUNCER_ADDR=127.0.0.1:$pgbouncer_port
export SE_TEST_PGBOUNCER_APP_PASSWORD_FILE=$dir/pgbouncer/app.password
export SE_TEST_PGBOUNCER_INI=$dir/pgbouncer/pgbouncer.ini
ENV
}

# Which servers: the names after the command, all four when none is named (the quick
# start needs MariaDB and seekdb only).
cmd=${1:-}
[ $# -eq 0 ] || shift
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(mariadb seekdb postgres pgbouncer)
for s in "${servers[@]}"; do
  case "$s" in
    mariadb|seekdb|postgres|pgbouncer) ;;
    *) echo "$0: unknown server '$s' (mariadb, seekdb, postgres or pgbouncer)" >&2; exit 2 ;;
  esac
done
each() { # <start|stop|status>: that step for each chosen server; the first failure ends the script
  local s
  for s in "${servers[@]}"; do "$1_$s"; done
}
# PgBouncer stops before the PostgreSQL behind it.
stop_order() { local s; for s in pgbouncer mariadb seekdb postgres; do [[ " ${servers[*]} " != *" $s "* ]] || "stop_$s"; done; }
stop_mariadb() { stop_one "$dir/mariadb/mysqld.pid"; }
stop_seekdb() { stop_one "$dir/seekdb.pid"; }
status_mariadb() { mariadb_sql 'SELECT 1' >/dev/null 2>&1; }
status_seekdb() { seekdb_sql 'SELECT 1' >/dev/null 2>&1; }
status_postgres() { pg_sql 'SELECT 1' >/dev/null 2>&1; }
stop_pgbouncer() { stop_one "$dir/pgbouncer/pgbouncer.pid"; }
status_pgbouncer() { pgbouncer_sql 'SHOW VERSION' >/dev/null 2>&1; }

case "$cmd" in
  start) each start; print_env ;;
  stop) stop_order ;;
  status) each status ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|status|env [mariadb] [seekdb] [postgres] [pgbouncer]" >&2; exit 2 ;;
esac
