#!/usr/bin/env bash
# The newcomer's wait: from a fresh clone of this repository's HEAD, the seconds until
# ./scripts/quickstart.sh serves metrics with both of its targets up, and, with --test,
# how long ./scripts/test.sh takes; each against its goal (300 s and 720 s), as a ratio.
#
# The clone has its own target directory (nothing built), and its own servers'
# directory and ports, so a running test setup is neither reused nor disturbed; the
# servers and the exporter it starts are stopped at the end, by PID. What the machine
# already has stays: Debian and PyPI packages, the packaging tools in ~/.cargo/bin,
# the crates in ~/.cargo/registry. It prints which of those were present; on a bare
# machine their installs come on top (the quick start's run beside its build).
# Usage: bench/newcomer.sh [--test]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
run_tests=0
case "${1:-}" in
  "") ;;
  --test) run_tests=1 ;;
  *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac

work=$(mktemp -d /tmp/newcomer.XXXXXX)
# mktemp's 0700 would keep out the servers' own users (PostgreSQL's initdb runs as
# postgres), as a clone in a home directory does not.
chmod 755 "$work"
clone=$work/clone
git clone -q --no-hardlinks "$repo" "$clone"
export SE_IT_DIR=$work/it SE_MARIADB_PORT=43306 SE_SEEKDB_PORT=42881 SE_POSTGRES_PORT=45432
export SE_QUICKSTART_LISTEN=127.0.0.1:49767
unset CARGO_TARGET_DIR

present() { command -v "$1" >/dev/null 2>&1 && echo present || echo absent; }
echo "newcomer: already on this machine: mariadbd $(present mariadbd), pylibseekdb $(python3 -c 'import pylibseekdb' 2>/dev/null && echo present || echo absent), cargo-deb $(present cargo-deb), cargo-zigbuild $(present cargo-zigbuild), crates in ~/.cargo/registry $([ -d "$HOME/.cargo/registry/cache" ] && echo present || echo absent)"

quickstart_pid=
cleanup() {
  [ -z "$quickstart_pid" ] || kill "$quickstart_pid" 2>/dev/null || true
  (cd "$clone" && bash scripts/test-servers.sh stop) || true
  rm -rf "$work"
}
trap cleanup EXIT

start=$(date +%s.%N)
(cd "$clone" && exec ./scripts/quickstart.sh) >"$work/quickstart.log" 2>&1 &
quickstart_pid=$!
up=
for _ in $(seq 1 1200); do # at most 10 minutes
  if ! kill -0 "$quickstart_pid" 2>/dev/null; then
    tail -n 30 "$work/quickstart.log" >&2
    echo "newcomer: the quick start ended before serving metrics" >&2
    exit 1
  fi
  body=$(curl -fsS "http://$SE_QUICKSTART_LISTEN/metrics" 2>/dev/null || true)
  if grep -q '^dbsession_up{target="mariadb"[^}]*} 1' <<<"$body" \
    && grep -q '^dbsession_up{target="seekdb"[^}]*} 1' <<<"$body"; then
    up=$(date +%s.%N)
    break
  fi
  sleep 0.5
done
[ -n "$up" ] || { echo "newcomer: no metrics after 10 minutes" >&2; exit 1; }
quickstart_s=$(python3 -c "print(round($up - $start, 1))")
built=$(grep -o 'Finished .* in [0-9.ms ]*' "$SE_IT_DIR/quickstart-build.log" | tail -1 || true)
kill "$quickstart_pid" 2>/dev/null || true
wait "$quickstart_pid" 2>/dev/null || true
quickstart_pid=
python3 -c "print(f'newcomer: quick start to first metrics of both targets: $quickstart_s s, {$quickstart_s/300:.2f}x the goal of 300 s ({\"pass\" if $quickstart_s <= 300 else \"FAIL\"}); its build: $built')"

if [ "$run_tests" = 1 ]; then
  start=$(date +%s.%N)
  status=0
  (cd "$clone" && ./scripts/test.sh) >"$work/test.log" 2>&1 || status=$?
  end=$(date +%s.%N)
  grep -E '^test result' "$work/test.log" | tail -3 || true
  if [ "$status" != 0 ]; then
    # The whole log outlives the clone: the failures' messages come before the list.
    cp "$work/test.log" /tmp/newcomer-test.log
    tail -n 40 "$work/test.log" >&2
    echo "newcomer: the tests failed; their whole output: /tmp/newcomer-test.log" >&2
    exit 1
  fi
  test_s=$(python3 -c "print(round($end - $start, 1))")
  python3 -c "print(f'newcomer: the test command: $test_s s, {$test_s/720:.2f}x the goal of 720 s ({\"pass\" if $test_s <= 720 else \"FAIL\"})')"
fi
