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
#   systemd-journal-remote     tests/tests/stdout.rs (journald: /lib/systemd/systemd-journal-remote writes
#                              real journal files from export format)
#   systemd                    tests/tests/stdout.rs (journalctl reads them; no systemd runs here)
#   coreutils                  tests/tests/stdout.rs (`base64`: the exec back-pressure flood)
#   zstd                       tests/tests/ingest_frames.rs (the `zstd` command reads the store's
#                              segments, open and sealed, as an operator would)
#
# Python packages, in venvs of Debian's python3 under /opt/logops-tests (the tests look there):
#   ntc-venv:  ntc-templates==9.2.0  textfsm/tests/ntc_corpus.rs, agent/tests/textfsm_cli.rs and
#                                    textfsm/benches/corpus.rs (the templates; 9.2.0 matches the
#                                    corpus in textfsm/tests/corpus, see its README)
#              textfsm==2.1.0        the reference engine: textfsm/benches/corpus.rs runs it beside ours
#   snmp-venv: pysnmp==7.1.30 (+ pyasn1, cryptography for AES)  tests/tests/snmp.rs: an SNMP
#                                    agent without GETBULK (tests/peers/snmp_nobulk.py)
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
    systemd-journal-remote
    systemd
    coreutils
    zstd
)
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

# Pinned Python packages, one venv each: (re)installed only when `pip freeze` lacks a pin.
venv_has_pins() {
    local venv=$1 frozen p
    shift
    [ -x "$venv/bin/python" ] || return 1
    frozen="$("$venv/bin/python" -m pip freeze 2>/dev/null)" || return 1
    for p in "$@"; do
        grep -qix "${p/-/[-_]}" <<<"$frozen" || return 1
    done
}
ensure_venv() {
    local venv=$1
    shift
    if venv_has_pins "$venv" "$@"; then
        echo "install-peers: $venv has $*"
    else
        echo "install-peers: installing $* into $venv"
        mkdir -p "$(dirname "$venv")"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    fi
}
ensure_venv "$NTC_VENV" "${PIP_PACKAGES[@]}"
ensure_venv /opt/logops-tests/snmp-venv pysnmp==7.1.30 pyasn1==0.6.5 cryptography==50.0.2
