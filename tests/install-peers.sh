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
#   python3-venv               the venv below
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
# Python packages, in a venv of Debian's python3 at $NTC_VENV (the tests look there):
#   ntc-templates==9.2.0  textfsm/tests/ntc_corpus.rs, agent/tests/textfsm_cli.rs and
#                         textfsm/benches/corpus.rs (the templates; 9.2.0 matches the corpus
#                         in textfsm/tests/corpus, see its README)
#   textfsm==2.1.0        the reference engine: textfsm/benches/corpus.rs runs it beside ours
set -euo pipefail

PACKAGES=(
    prometheus-node-exporter
    fping
    iproute2
    nftables
    iptables
    snmpd
    snmp
    python3-venv
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
)
SYSLOG_NG=/opt/logops-tests/syslog-ng
NTC_VENV=/opt/logops-tests/ntc-venv
PIP_PACKAGES=(ntc-templates==9.2.0 textfsm==2.1.0)

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

# The pinned Python packages: reinstalled only when `pip freeze` lacks one of the pins.
venv_has_pins() {
    [ -x "$NTC_VENV/bin/python" ] || return 1
    local frozen p
    frozen="$("$NTC_VENV/bin/python" -m pip freeze 2>/dev/null)" || return 1
    for p in "${PIP_PACKAGES[@]}"; do
        grep -qix "${p/-/[-_]}" <<<"$frozen" || return 1
    done
}
if venv_has_pins; then
    echo "install-peers: $NTC_VENV has ${PIP_PACKAGES[*]}"
else
    echo "install-peers: installing ${PIP_PACKAGES[*]} into $NTC_VENV"
    mkdir -p "$(dirname "$NTC_VENV")"
    /usr/bin/python3 -m venv "$NTC_VENV"
    "$NTC_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
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
