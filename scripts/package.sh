#!/usr/bin/env bash
# Builds the packages from a release build:
#   target/package/session-exporter_<version>-1_<arch>.deb   (cargo-deb)
#   target/package/session-exporter-<version>-1.<arch>.rpm   (cargo-generate-rpm)
# and stages target/package/session_exporter, the stripped binary that both packages
# and deploy/docker/Dockerfile take. Prints the paths of the two packages, one per line,
# on stdout.
#   ./scripts/package.sh && sudo apt-get install ./target/package/session-exporter_*.deb
# Options (one at most):
#   --tools-only     install the packaging tools (below) and stop;
#   --build-only     stop after the release build;
#   --binary PATH    package PATH instead of a release build: a binary built the same
#                    way (cargo-zigbuild, glibc 2.17) in another profile. The test
#                    command packages its test build's binary so (scripts/test.sh).
#
# The binary is linked against glibc 2.17 (cargo-zigbuild, with zig from PyPI), not
# against this machine's: a build on Debian 12 would need glibc 2.34 and refuse to start
# on RHEL 8 and its rebuilds (2.28), where many OceanBase clusters run. Installs the
# pinned cargo-zigbuild and ziglang (PyPI), cargo-deb and cargo-generate-rpm (crates.io)
# when missing.
set -euo pipefail
mode=${1:-}
case "$mode" in
  "" | --tools-only | --build-only) ;;
  --binary)
    # Resolved from the caller's directory, before the one below.
    [ $# -eq 2 ] && [ -x "$2" ] || { echo "package: --binary needs an executable file, got '${2:-}'" >&2; exit 2; }
    given=$(realpath "$2") ;;
  *) echo "usage: $0 [--tools-only | --build-only | --binary PATH]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
case "${given:-}" in
  "$PWD/target/package/"*) echo "package: --binary must not be inside target/package/, which is rebuilt" >&2; exit 2 ;;
esac

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.0
CARGO_ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.1
GLIBC_VERSION=2.17

# cargo-zigbuild and zig come from PyPI, prebuilt (the same release as on crates.io);
# pip puts the subcommand in Python's scripts directory, which cargo must find.
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$scripts_dir:$PATH"
# Both pinned in one command, so that cargo-zigbuild's `ziglang>=` takes our zig.
if ! cargo-zigbuild --version 2>/dev/null | grep -qF " $CARGO_ZIGBUILD_VERSION" \
  || ! python3 -c 'import ziglang' 2>/dev/null; then
  echo "package: pip install cargo-zigbuild==$CARGO_ZIGBUILD_VERSION ziglang==$ZIGLANG_VERSION" >&2
  python3 -m pip install -q --root-user-action=ignore \
    "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION" >&2
fi

# cargo-deb and cargo-generate-rpm have no current prebuilt release in the registries
# this project installs from (PyPI has only 2023's, without xz payloads): built in one
# go with a shared target directory and without optimising Rust code (C code at -O2,
# for xz): twice as fast to build as a release build, and they package in seconds all
# the same.
missing=()
need_tool() { # <crate, also its binary's name> <version>
  "$1" --version 2>/dev/null | grep -qF " $2" || missing+=("$1@$2")
}
need_tool cargo-deb "$CARGO_DEB_VERSION"
need_tool cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
if [ ${#missing[@]} -gt 0 ]; then
  echo "package: cargo install ${missing[*]}" >&2
  tools_target=$(mktemp -d)
  trap 'rm -rf "$tools_target"' EXIT
  CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=64 CFLAGS=-O2 \
    cargo install --quiet --locked --force --target-dir "$tools_target" "${missing[@]}" >&2
fi

if [ "$mode" = --tools-only ]; then
  exit 0
fi
if [ "$mode" = --binary ]; then
  built=$given
else
  triple="$(uname -m)-unknown-linux-gnu"
  cargo zigbuild --release --locked --target "$triple.$GLIBC_VERSION" --bin session_exporter >&2
  target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  built="$target_dir/$triple/release/session_exporter"
fi
if [ "$mode" = --build-only ]; then
  exit 0
fi

# Where Cargo.toml's package assets point (relative to the repository).
out=target/package
rm -rf "$out"
mkdir -p "$out/generated" "$out/rpm"
strip -o "$out/session_exporter" "$built"
bin=$out/session_exporter
# -n: no name or time stamp in the gzip header, so the same input gives the same file.
"$bin" --generate=man | gzip -9n >"$out/generated/session_exporter.1.gz"
"$bin" --generate=bash >"$out/generated/session_exporter.bash"
"$bin" --generate=zsh >"$out/generated/_session_exporter"
"$bin" --generate=fish >"$out/generated/session_exporter.fish"

# The RPM's %pre makes the user from the sysusers.d line the package installs (what
# Fedora's %sysusers_create_package does): the files need its group at unpack time.
sysusers=deploy/systemd/session-exporter.sysusers
{
  echo "# The system user and group, from /usr/lib/sysusers.d/session-exporter.conf."
  echo "systemd-sysusers --replace=/usr/lib/sysusers.d/session-exporter.conf - <<'SYSUSERS'"
  grep -v '^#' "$sysusers"
  echo "SYSUSERS"
} >"$out/rpm/pre-install.sh"

# --no-strip: the staged binary is stripped already.
cargo deb --no-build --no-strip --locked --output "$out/" >&2
# xz, not cargo-generate-rpm's default zstd: the payload RHEL 8's rpm reads for sure.
cargo generate-rpm --output "$out/" --payload-compress xz \
  --set-metadata "pre_install_script = \"$out/rpm/pre-install.sh\"" >&2

ls "$out"/*.deb "$out"/*.rpm
