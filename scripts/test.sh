#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests against real MariaDB, seekdb and
# PostgreSQL servers, promtool, and the .deb, .rpm and image built and used for real.
# Installs what is missing (Debian packages, PyPI packages, the packaging tools
# of scripts/package.sh) and starts the servers on loopback; servers this run started
# are stopped at the end unless SE_KEEP_SERVERS=1 (keeping them makes the next run start
# in a second). With no arguments it checks the code's form first, as CI does:
# `cargo fmt --check` and clippy with -D warnings.
# Extra arguments go to `cargo test`, e.g. `./scripts/test.sh --test it mariadb::`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
started_here=0
bash scripts/test-servers.sh status || started_here=1
# An assignment, so that a server that fails to start stops the run here (set -e).
servers_env=$(bash scripts/test-servers.sh start)
eval "$servers_env"
if [ "$started_here" = 1 ] && [ "${SE_KEEP_SERVERS:-0}" != 1 ]; then
  trap 'bash scripts/test-servers.sh stop' EXIT
fi

# One build serves every test, the packages' included: the tests are built with
# cargo-zigbuild against glibc 2.17, the way scripts/package.sh links a release, so
# tests/it/packages/ packages the test build's own binary (SE_TEST_BUILD_GLIBC says
# so) instead of waiting for a release build of its own. The packaging tools come first:
# package.sh installs cargo-zigbuild and zig with them.
bash scripts/package.sh --tools-only
# Where pip put cargo-zigbuild: Python's scripts directory, or the user base's bin when
# pip installed for the user.
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
user_bin=$(python3 -c 'import site; print(site.getuserbase())')/bin
export PATH="$scripts_dir:$user_bin:$PATH"
command -v cargo-zigbuild >/dev/null || {
  echo "test: cargo-zigbuild is not on PATH after scripts/package.sh --tools-only" >&2
  exit 1
}
export SE_TEST_BUILD_GLIBC=2.17
target="$(uname -m)-unknown-linux-gnu.$SE_TEST_BUILD_GLIBC"

# The whole suite also holds the code to its form, as CI: rustfmt's layout, and no
# clippy warning (its check build shares the build scripts' output with the tests').
if [ $# -eq 0 ]; then
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
  fi
  cargo fmt --all --check
  cargo-zigbuild clippy --locked --all-targets --target "$target" -- -D warnings
fi
cargo-zigbuild test --locked --target "$target" "$@"
