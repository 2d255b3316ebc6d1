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
#
# Python packages, in a venv of Debian's python3 at $NTC_VENV (the tests look there):
#   ntc-templates==9.2.0  textfsm/tests/ntc_corpus.rs, agent/tests/textfsm_cli.rs and
#                         textfsm/benches/corpus.rs (the templates; 9.2.0 matches the corpus
#                         in textfsm/tests/corpus, see its README)
#   textfsm==2.1.0        the reference engine: textfsm/benches/corpus.rs runs it beside ours
# and at $SSH_VENV (tests/tests/ssh.rs; tests/src/sshd.rs finds it there):
#   netmiko==4.8.0        the reference the SSH collector's output text is compared with
#   fake-switches==1.5.0  a Cisco switch simulator (Twisted conch), installed --no-deps (it pins
#                         Twisted<17, which does not build on Python 3.11) next to
#                         twisted[conch]==26.10.0 netaddr==1.3.0 lxml==6.1.3 tftpy==0.8.7
#                         pyasn1==0.6.5; tests/peers/run_fake_switch.py fixes its launcher
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
)
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

# The pinned Python packages: a venv is (re)installed only when `pip freeze` lacks a pin.
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
PIP=(-m pip install --quiet --disable-pip-version-check)
if venv_has_pins "$NTC_VENV" "${PIP_PACKAGES[@]}"; then
    echo "install-peers: $NTC_VENV has ${PIP_PACKAGES[*]}"
else
    echo "install-peers: installing ${PIP_PACKAGES[*]} into $NTC_VENV"
    mkdir -p "$(dirname "$NTC_VENV")"
    /usr/bin/python3 -m venv "$NTC_VENV"
    "$NTC_VENV/bin/python" "${PIP[@]}" "${PIP_PACKAGES[@]}"
fi
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
