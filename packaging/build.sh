#!/usr/bin/env bash
# Builds the logops-agent and logops-ingest packages, .deb (dpkg-deb) and .rpm (rpmbuild),
# from binaries cargo built.
#
#   packaging/build.sh [--bin-dir DIR] [--out DIR] [deb] [rpm]
#
# --bin-dir: where logops-agent and logops-ingest are (default: `cargo build --release
# --locked` is run and target/release is used); --out: where the packages go (default
# dist/); formats: both unless named. Needs dpkg-deb (dpkg), objdump (binutils) and, for
# .rpm, rpmbuild (Debian package `rpm`). Prints the path of each package it made.
#
# Both packages install the binary in /usr/bin, its systemd unit from systemd/, and:
# - logops-agent: /etc/logops/agent.toml (a conffile: packaging/etc/agent.toml), the commented
#   example in /usr/share/doc/logops-agent/; the buffer directory /var/lib/logops. The
#   service is enabled, and started when /etc/logops/api_key exists.
# - logops-ingest: the system user logops-ingest, /var/lib/logops-ingest, and at the first
#   installation /etc/logops/ingest.toml with a tenant "default" whose new API key goes to
#   /etc/logops/api_key (packaging/lib/ingest-setup.sh); enabled and started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BIN_DIR=""
OUT="$ROOT/dist"
FORMATS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) BIN_DIR=$(cd "$2" && pwd); shift 2 ;;
        --out) mkdir -p "$2"; OUT=$(cd "$2" && pwd); shift 2 ;;
        deb|rpm) FORMATS+=("$1"); shift ;;
        *) echo "build.sh: unknown argument '$1' (see the comment at its top)" >&2; exit 2 ;;
    esac
done
[ ${#FORMATS[@]} -gt 0 ] || FORMATS=(deb rpm)
if [ -z "$BIN_DIR" ]; then
    cargo build --release --locked -p logops-agent -p logops-ingest
    BIN_DIR="$ROOT/target/release"
    BUILT_HERE=1
fi
for b in logops-agent logops-ingest; do
    [ -x "$BIN_DIR/$b" ] || { echo "build.sh: $BIN_DIR/$b is missing" >&2; exit 1; }
done
# The agent's idle code is linked first from agent/symbol-order.txt (agent/build.rs); a list
# made for other dependencies or another toolchain matches few symbols, and the idle agent
# keeps about 3 MiB more of its code resident. Say so; it is not an error.
if [ -n "${BUILT_HERE:-}" ] && command -v nm >/dev/null; then
    listed=$(grep -v '^#' agent/symbol-order.txt | sort -u)
    found=$(comm -12 <(echo "$listed") <(nm --defined-only "$BIN_DIR/logops-agent" | awk '{print $3}' | sort -u) | wc -l)
    total=$(echo "$listed" | wc -l)
    echo "build.sh: $found of the $total functions of agent/symbol-order.txt are in logops-agent"
    if [ $((found * 10)) -lt $((total * 9)) ]; then
        echo "build.sh: warning: agent/symbol-order.txt is stale; remake it with target/release/symbol-order (tests/README.md)" >&2
    fi
fi
mkdir -p "$OUT"

VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Per package: its summary, description, what its maintainer scripts do.
summary() {
    case "$1" in
        logops-agent) echo "LogOps host agent: logs, metrics and device data, buffered durably and shipped" ;;
        logops-ingest) echo "LogOps ingest: authenticates, validates and stores agents' batches" ;;
    esac
}
description() {
    case "$1" in
        logops-agent) echo "One small daemon per server: tails files, journald and container logs, samples host metrics, pings hosts, polls SNMP devices, receives syslog, and ships everything to logops-ingest through a durable buffer: nothing lost, nothing doubled." ;;
        logops-ingest) echo "A thin HTTP(S) endpoint for logops-agent: API keys and HMAC signing, rate limits, deduplication of retried batches, and an embedded NDJSON store with retention and a query API." ;;
    esac
}
setup() {
    case "$1" in
        logops-agent) echo "install -d -m 0750 /var/lib/logops; install -d -m 0755 /etc/logops" ;;
        logops-ingest) echo "/usr/lib/logops-ingest/setup" ;;
    esac
}
ready() {
    case "$1" in
        logops-agent) echo "[ -s /etc/logops/api_key ]" ;;
        logops-ingest) echo "true" ;;
    esac
}
not_ready() {
    case "$1" in
        logops-agent) echo "logops-agent: put the ingest's API key in /etc/logops/api_key (mode 0600), then: systemctl start logops-agent" ;;
        logops-ingest) echo "" ;;
    esac
}
purge() {
    case "$1" in
        # The agent's buffer (what it has not sent yet goes with it) and its API key.
        logops-agent) echo "rm -rf /var/lib/logops; rm -f /etc/logops/api_key; rmdir /etc/logops 2>/dev/null || true" ;;
        # The ingest's store is the users' data: kept.
        logops-ingest) echo 'rm -f /etc/logops/ingest.toml; rmdir /etc/logops 2>/dev/null || true; [ ! -d /var/lib/logops-ingest ] || echo "logops-ingest: the stored data in /var/lib/logops-ingest is kept; remove it yourself"' ;;
    esac
}

# What the package needs besides the libraries its binary links.
extra_depends() {
    case "$1" in
        # The unit's ExecReload runs /bin/kill; https:// URLs are checked against the system's CAs.
        logops-agent) echo ", procps, ca-certificates" ;;
        logops-ingest) echo ", passwd" ;;  # setup runs groupadd and useradd
    esac
}

# Lays the package's files out under $2.
stage() {
    local pkg=$1 dir=$2
    # Stripped: debug information stays with the build, not on every server.
    install -D -s -m 0755 "$BIN_DIR/$pkg" "$dir/usr/bin/$pkg"
    install -D -m 0644 "systemd/$pkg.service" "$dir/lib/systemd/system/$pkg.service"
    install -d "$dir/usr/share/doc/$pkg"
    printf 'LogOps %s\nLicense: Apache-2.0\n' "$VERSION" > "$dir/usr/share/doc/$pkg/copyright"
    case "$pkg" in
        logops-agent)
            install -D -m 0644 packaging/etc/agent.toml "$dir/etc/logops/agent.toml"
            install -m 0644 config.example.toml "$dir/usr/share/doc/$pkg/config.example.toml"
            ;;
        logops-ingest)
            install -D -m 0755 packaging/lib/ingest-setup.sh "$dir/usr/lib/logops-ingest/setup"
            install -D -m 0644 packaging/etc/ingest.toml.in "$dir/usr/share/logops-ingest/ingest.toml.in"
            install -m 0644 ingest/ingest.example.toml "$dir/usr/share/doc/$pkg/ingest.example.toml"
            ;;
    esac
}

# Fills a maintainer-script template for $1.
render() {
    local pkg=$1 template=$2
    local s
    s=$(cat "$template")
    s=${s//@PKG@/$pkg}
    s=${s//@SETUP@/$(setup "$pkg")}
    s=${s//@READY@/$(ready "$pkg")}
    s=${s//@NOT_READY@/$(not_ready "$pkg")}
    s=${s//@PURGE@/$(purge "$pkg")}
    printf '%s\n' "$s"
}

# The Debian packages of the shared libraries the binary needs (libc6 with the newest
# GLIBC_ symbol version it uses).
deb_depends() {
    local bin=$1 deps=() lib pkg glibc
    glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
    deps+=("libc6 (>= $glibc)")
    for lib in $(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }'); do
        case "$lib" in libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*) continue ;; esac
        pkg=$(dpkg -S "*/$lib" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$pkg" ] || { echo "build.sh: no Debian package provides $lib (needed by $bin)" >&2; exit 1; }
        deps+=("$pkg")
    done
    local IFS=,
    echo "${deps[*]}" | sed 's/,/, /g'
}

build_deb() {
    local pkg=$1 dir="$WORK/deb/$1"
    stage "$pkg" "$dir"
    install -d "$dir/DEBIAN"
    local arch size
    arch=$(dpkg --print-architecture)
    size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
    cat > "$dir/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $VERSION
Architecture: $arch
Maintainer: LogOps <logops@example.invalid>
Installed-Size: $size
Depends: $(deb_depends "$dir/usr/bin/$pkg")$(extra_depends "$pkg")
Section: admin
Priority: optional
Homepage: https://example.invalid/logops
Description: $(summary "$pkg")
 $(description "$pkg")
CONTROL
    if [ "$pkg" = logops-agent ]; then
        echo /etc/logops/agent.toml > "$dir/DEBIAN/conffiles"
    fi
    for s in postinst prerm postrm; do
        render "$pkg" "packaging/deb/$s.in" > "$dir/DEBIAN/$s"
        chmod 0755 "$dir/DEBIAN/$s"
    done
    local file="$OUT/${pkg}_${VERSION}_${arch}.deb"
    dpkg-deb --root-owner-group -Zgzip --build "$dir" "$file" >/dev/null
    echo "$file"
}

build_rpm() {
    local pkg=$1 stage_dir="$WORK/rpm-stage/$1" top="$WORK/rpmbuild"
    stage "$pkg" "$stage_dir"
    mkdir -p "$top"/{BUILD,RPMS,SOURCES,SPECS,SRPMS}
    local files
    files=$(cd "$stage_dir" && find . -type f | sed 's|^\.||' | sort | while read -r f; do
        case "$f" in
            /etc/*) echo "%config(noreplace) $f" ;;
            *) echo "$f" ;;
        esac
    done)
    local hint="start it with: systemctl start $pkg"
    [ "$pkg" = logops-agent ] && hint="put the ingest's API key in /etc/logops/api_key (mode 0600), then: systemctl start $pkg"
    local spec="$top/SPECS/$pkg.spec"
    local s
    s=$(cat packaging/rpm/package.spec.in)
    s=${s//@PKG@/$pkg}
    s=${s//@VERSION@/$VERSION}
    s=${s//@STAGE@/$stage_dir}
    s=${s//@SUMMARY@/$(summary "$pkg")}
    s=${s//@DESCRIPTION@/$(description "$pkg")}
    s=${s//@FILES@/$files}
    s=${s//@SETUP@/$(setup "$pkg")}
    s=${s//@START_HINT@/$hint}
    printf '%s\n' "$s" > "$spec"
    rpmbuild --quiet --define "_topdir $top" --define "_build_id_links none" \
        --define "__strip /bin/true" -bb "$spec" >/dev/null
    local built
    built=$(find "$top/RPMS" -name "$pkg-$VERSION-*.rpm" | head -1)
    cp "$built" "$OUT/"
    echo "$OUT/$(basename "$built")"
}

for f in "${FORMATS[@]}"; do
    for pkg in logops-agent logops-ingest; do
        "build_$f" "$pkg"
    done
done
