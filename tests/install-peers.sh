#!/usr/bin/env bash
# Installs the real peers the tests run against (Debian bookworm, as root). Idempotent: does
# nothing when every package is already installed, and runs `apt-get update` only when one is
# missing. Peers are started by the tests themselves (on 127.0.0.1, free ports, own configs);
# `apt-get install` starts no daemon on machines without an init system.
#
#   prometheus-node-exporter   agent/tests/host_vs_node_exporter.rs (host metrics cross-check)
#   fping                      tests/src/bin/ping-bench.rs (the reference the pinger is measured beside)
#   iproute2                   tests/tests/ping_netns.rs (network namespaces, veth pairs, addresses)
#   nftables                   tests/tests/ping_netns.rs (`numgen random` drops: injected loss; `dup`)
#   iptables                   tests/tests/ping_netns.rs (NFQUEUE rule for the delay holder; this
#                              kernel has no nftables `queue` and no netem)
#   snmpd                      agent/tests/snmp_vs_snmpd.rs, agent/tests/snmp_cli.rs (the SNMP
#                              collector's peer: v2c community and v3 users) and the snmp-bench
#   snmp                       the same tests: net-snmp's snmpget/snmpbulkwalk give the reference values
#   openssh-server             tests/tests/ssh.rs and tests/src/bin/ssh-bench.rs: the private sshd
#                              (ForceCommand fake router, plain Linux host); no system sshd is started
#   openssh-client             the same: ssh-keygen (host and client keys), ssh-keyscan
#   libssl-dev, pkg-config     building ssh2 (libssh2-sys links the system OpenSSL)
#   python3-venv               the venvs below
#   systemd-journal-remote     tests/tests/stdout.rs (journald: /lib/systemd/systemd-journal-remote writes
#                              real journal files from export format)
#   systemd                    tests/tests/stdout.rs (journalctl reads them; no systemd runs here)
#   coreutils                  tests/tests/stdout.rs (`base64`: the exec back-pressure flood)
#   debootstrap                tests/tests/packaging.rs (the Debian root the packages are installed in,
#                              made below)
#   rpm                        tests/tests/packaging.rs (rpmbuild for packaging/build.sh; rpm --root)
#   binutils                   packaging/build.sh (objdump: a .deb's library dependencies)
#   prometheus                 tests/tests/packaging.rs (promtool: packaging/prometheus alert rules)
#   zstd                       tests/tests/ingest_frames.rs (the `zstd` command reads the store's
#                              segments, open and sealed, as an operator would)
#   rsyslog                    tests/tests/syslog.rs (rsyslogd forwarding to the agent, octet-counted TCP
#                              and UDP) and tests/src/bin/syslog-bench.rs (the receiver measured beside ours)
#   bsdutils                   tests/tests/syslog.rs (util-linux `logger`: RFC 3164/5424 over UDP, TCP,
#                              octet counting, the Unix socket; rsyslog's input)
#   socat                      tests/tests/syslog.rs (the TLS sender, with and without client certificates)
#   libivykis0 libnet1 libwrap0 libglib2.0-0 libjson-c5 libpcre3 libcap2 libssl3 libsystemd0
#                              the libraries of syslog-ng's loggen (below)
#
# syslog-ng-core conflicts with rsyslog in dpkg, so its .deb is fetched with `apt-get
# download` and unpacked into $SYSLOG_NG (not installed): its `loggen` is the load generator of
# tests/src/bin/syslog-bench.rs.
#
# A Debian bookworm root (debootstrap minbase + systemd, procps, ca-certificates) at $DEBIAN_ROOT:
#   tests/tests/packaging.rs installs, runs and purges the .deb and .rpm packages in it.
#
# Python packages, in venvs of Debian's python3 under /opt/logops-tests (the tests look there):
#   ntc-venv:  ntc-templates==9.2.0  textfsm/tests/ntc_corpus.rs, agent/tests/textfsm_cli.rs and
#                                    textfsm/benches/corpus.rs (the templates; 9.2.0 matches the
#                                    corpus in textfsm/tests/corpus, see its README)
#              textfsm==2.1.0        the reference engine: textfsm/benches/corpus.rs runs it beside ours
#   snmp-venv: pysnmp==7.1.30 (+ pyasn1, cryptography for AES)  tests/tests/snmp.rs: an SNMP
#                                    agent without GETBULK (tests/peers/snmp_nobulk.py)
#   k8s-venv:  kubernetes-validate==1.37.0  tests/tests/packaging.rs: packaging/kubernetes
#                                    against the Kubernetes API schemas
#   ssh-venv:  netmiko==4.8.0        tests/tests/ssh.rs (tests/src/sshd.rs finds it): the reference the
#                                    SSH collector's output text is compared with
#              fake-switches==1.5.0  a Cisco switch simulator (Twisted conch), installed --no-deps (it
#                                    pins Twisted<17, which does not build on Python 3.11) next to
#                                    twisted[conch]==26.10.0 netaddr==1.3.0 lxml==6.1.3 tftpy==0.8.7
#                                    pyasn1==0.6.5; tests/peers/run_fake_switch.py fixes its launcher
set -euo pipefail

PACKAGES=(
    prometheus-node-exporter
    fping
    iproute2
    nftables
    iptables
    snmpd
    snmp
    openssh-server
    openssh-client
    libssl-dev
    pkg-config
    python3-venv
    systemd-journal-remote
    systemd
    coreutils
    debootstrap
    rpm
    binutils
    prometheus
    rsyslog
    bsdutils
    socat
    libivykis0
    libnet1
    libwrap0
    libglib2.0-0
    libjson-c5
    libpcre3
    libcap2
    libssl3
    libsystemd0
    zstd
)
SYSLOG_NG=/opt/logops-tests/syslog-ng
NTC_VENV=/opt/logops-tests/ntc-venv
PIP_PACKAGES=(ntc-templates==9.2.0 textfsm==2.1.0)
SSH_VENV=/opt/logops-tests/ssh-venv
SSH_PIP=(netmiko==4.8.0)
SSH_PIP_NODEPS=(fake-switches==1.5.0)
SSH_PIP_DEPS=("twisted[conch]==26.10.0" netaddr==1.3.0 lxml==6.1.3 tftpy==0.8.7 pyasn1==0.6.5)

export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-peers: all installed (${PACKAGES[*]})"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-peers: missing ${missing[*]}; run this script as root" >&2
        exit 1
    fi
    echo "install-peers: installing ${missing[*]}"
    # Other jobs may hold the dpkg lock: wait for it rather than fail.
    APT=(apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    "${APT[@]}" update
    "${APT[@]}" install -y --no-install-recommends "${missing[@]}"
fi

# Pinned Python packages, one venv each: (re)installed only when `pip freeze` lacks a pin.
PIP=(-m pip install --quiet --disable-pip-version-check)
venv_has_pins() {   # VENV PIN...
    local venv=$1 frozen p name
    shift
    [ -x "$venv/bin/python" ] || return 1
    frozen="$("$venv/bin/python" -m pip freeze 2>/dev/null)" || return 1
    for p in "$@"; do
        name=${p%%\[*}; name=${name%%==*}; p="$name==${p##*==}"
        grep -qix "${p//-/[-_]}" <<<"$frozen" || return 1
    done
}
ensure_venv() {   # VENV PIN...
    local venv=$1
    shift
    if venv_has_pins "$venv" "$@"; then
        echo "install-peers: $venv has $*"
    else
        echo "install-peers: installing $* into $venv"
        mkdir -p "$(dirname "$venv")"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/python" "${PIP[@]}" "$@"
    fi
}
ensure_venv "$NTC_VENV" "${PIP_PACKAGES[@]}"
ensure_venv /opt/logops-tests/snmp-venv pysnmp==7.1.30 pyasn1==0.6.5 cryptography==50.0.2
ensure_venv /opt/logops-tests/k8s-venv kubernetes-validate==1.37.0
if venv_has_pins "$SSH_VENV" "${SSH_PIP[@]}" "${SSH_PIP_NODEPS[@]}" "${SSH_PIP_DEPS[@]}"; then
    echo "install-peers: $SSH_VENV has ${SSH_PIP[*]} ${SSH_PIP_NODEPS[*]}"
else
    echo "install-peers: installing ${SSH_PIP[*]} ${SSH_PIP_NODEPS[*]} into $SSH_VENV"
    mkdir -p "$(dirname "$SSH_VENV")"
    /usr/bin/python3 -m venv "$SSH_VENV"
    "$SSH_VENV/bin/python" "${PIP[@]}" "${SSH_PIP[@]}"
    # fake-switches pins Twisted<17 (no build on Python 3.11): without its dependencies,
    # then the ones it needs, current. pip's resolver warning about the pin is expected.
    "$SSH_VENV/bin/python" "${PIP[@]}" --no-deps "${SSH_PIP_NODEPS[@]}"
    "$SSH_VENV/bin/python" "${PIP[@]}" --no-warn-conflicts "${SSH_PIP_DEPS[@]}"
fi

# The Debian root for the package tests, made once (about 240 MB; a minute or two): minbase
# plus what the packages depend on beyond it, so that dpkg -i needs no network at test time.
DEBIAN_ROOT=/opt/logops-tests/debian-bookworm
ROOT_PACKAGES=(systemd procps ca-certificates)
root_has_packages() {
    local p
    [ -x "$DEBIAN_ROOT/usr/bin/dpkg" ] || return 1
    for p in "${ROOT_PACKAGES[@]}"; do
        [ "$(chroot "$DEBIAN_ROOT" dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || return 1
    done
}
if root_has_packages; then
    echo "install-peers: $DEBIAN_ROOT is a Debian root with ${ROOT_PACKAGES[*]}"
elif [ -x "$DEBIAN_ROOT/usr/bin/dpkg" ]; then
    echo "install-peers: adding ${ROOT_PACKAGES[*]} to $DEBIAN_ROOT"
    cp /etc/resolv.conf "$DEBIAN_ROOT/etc/resolv.conf"
    # What an interrupted package test may have left half-installed.
    chroot "$DEBIAN_ROOT" dpkg --purge logops-agent logops-ingest >/dev/null 2>&1 || true
    chroot "$DEBIAN_ROOT" apt-get -o Acquire::Retries=3 update >/dev/null
    chroot "$DEBIAN_ROOT" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${ROOT_PACKAGES[@]}" >/dev/null
else
    echo "install-peers: debootstrap of Debian bookworm into $DEBIAN_ROOT"
    rm -rf "$DEBIAN_ROOT.partial"
    MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    INCLUDE=$(IFS=,; echo "${ROOT_PACKAGES[*]}")
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$DEBIAN_ROOT.partial" \
        "${MIRROR:-http://deb.debian.org/debian}" > /tmp/logops-debootstrap.log 2>&1 \
        || { tail -20 /tmp/logops-debootstrap.log >&2; exit 1; }
    mv "$DEBIAN_ROOT.partial" "$DEBIAN_ROOT"
fi

# syslog-ng's loggen, unpacked (see the top).
if [ -x "$SYSLOG_NG/usr/bin/loggen" ]; then
    echo "install-peers: $SYSLOG_NG has loggen"
else
    echo "install-peers: unpacking syslog-ng-core into $SYSLOG_NG (for loggen)"
    mkdir -p "$SYSLOG_NG"
    tmp="$(mktemp -d)"
    # apt-get download needs the package lists: fetch them if it cannot find the package.
    if ! (cd "$tmp" && { apt-get -o Acquire::Retries=3 download syslog-ng-core >/dev/null 2>&1 \
            || { apt-get -o DPkg::Lock::Timeout=600 update >/dev/null \
                 && apt-get -o Acquire::Retries=3 download syslog-ng-core >/dev/null; }; } \
        && dpkg-deb -x syslog-ng-core_*.deb "$SYSLOG_NG"); then
        # Only the benchmark needs loggen: the tests go on without it.
        echo "install-peers: could not unpack syslog-ng-core into $SYSLOG_NG (syslog-bench needs its loggen)" >&2
    fi
    rm -rf "$tmp"
fi
