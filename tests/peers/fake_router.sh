#!/bin/bash
# A canned Cisco-IOS-like CLI, run by the tests' private sshd as its ForceCommand
# (tests/src/sshd.rs). Prompt HOST> / HOST#, `enable` asks for the secret, output pages at
# 24 lines (` --More-- `, answered by a space) until `terminal length 0`.
#
#   fake_router.sh [--hostname NAME] [--secret SECRET] [--page-always N]
#
# --page-always N: pages every N lines whatever `terminal length` says (a device that
# pages despite the paging command). `show hang` never returns (Ctrl-C is ignored), for
# command timeouts. Exec mode (`ssh host 'show version'`) runs one command without prompt.
HOST=router1
ENABLE_SECRET=enable123
ALWAYS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --hostname) HOST=$2; shift 2 ;;
    --secret) ENABLE_SECRET=$2; shift 2 ;;
    --page-always) ALWAYS=$2; shift 2 ;;
    *) echo "fake_router.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mode=user   # user | enable | config | config-if
length=24
trap '' INT   # Ctrl-C does not end the session (as on a router)
exec 3<&0     # the terminal, for the pager's key reads

show_version() { cat <<'OUT'
Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.2(7)E4, RELEASE SOFTWARE (fc2)
Technical Support: http://www.cisco.com/techsupport
Copyright (c) 1986-2021 by Cisco Systems, Inc.
Compiled Mon 22-Feb-21 03:32 by prod_rel_team

ROM: Bootstrap program is C2960X boot loader
BOOTLDR: C2960X Boot Loader (C2960X-HBOOT-M) Version 15.2(7r)E, RELEASE SOFTWARE (fc1)

router1 uptime is 12 weeks, 3 days, 4 hours, 5 minutes
System returned to ROM by power-on
System image file is "flash:/c2960x-universalk9-mz.152-7.E4/c2960x-universalk9-mz.152-7.E4.bin"

cisco WS-C2960X-24TS-L (APM86XXX) processor (revision D0) with 524288K bytes of memory.
Processor board ID FOC1234X5YZ
Last reset from power-on
2 Virtual Ethernet interfaces
24 Gigabit Ethernet interfaces

Model number                    : WS-C2960X-24TS-L
System serial number            : FOC1234X5YZ

Configuration register is 0xF
OUT
}
show_ip_int_brief() { cat <<'OUT'
Interface              IP-Address      OK? Method Status                Protocol
Vlan1                  192.0.2.11      YES NVRAM  up                    up
GigabitEthernet1/0/1   unassigned      YES unset  up                    up
GigabitEthernet1/0/2   unassigned      YES unset  down                  down
GigabitEthernet1/0/3   unassigned      YES unset  administratively down down
OUT
}
show_interfaces() { cat <<'OUT'
Vlan1 is up, line protocol is up
  Hardware is EtherSVI, address is 0011.2233.4401 (bia 0011.2233.4401)
  Internet address is 192.0.2.11/24
  MTU 1500 bytes, BW 1000000 Kbit/sec, DLY 10 usec,
     reliability 255/255, txload 1/255, rxload 1/255
  5 minute input rate 2000 bits/sec, 3 packets/sec
  5 minute output rate 1000 bits/sec, 1 packets/sec
     123456 packets input, 9876543 bytes, 0 no buffer
     0 input errors, 0 CRC, 0 frame, 0 overrun, 0 ignored
     65432 packets output, 5432109 bytes, 0 underruns
     0 output errors, 0 interface resets
GigabitEthernet1/0/1 is up, line protocol is up (connected)
  Hardware is Gigabit Ethernet, address is 0011.2233.4481 (bia 0011.2233.4481)
  Description: uplink-to-core
  MTU 1500 bytes, BW 1000000 Kbit/sec, DLY 10 usec,
     reliability 255/255, txload 1/255, rxload 1/255
  Full-duplex, 1000Mb/s, media type is 10/100/1000BaseTX
  5 minute input rate 48000 bits/sec, 40 packets/sec
  5 minute output rate 36000 bits/sec, 30 packets/sec
     987654321 packets input, 123456789012 bytes, 0 no buffer
     3 input errors, 1 CRC, 0 frame, 0 overrun, 0 ignored
     876543210 packets output, 98765432109 bytes, 0 underruns
     0 output errors, 0 collisions, 2 interface resets
GigabitEthernet1/0/2 is down, line protocol is down (notconnect)
  Hardware is Gigabit Ethernet, address is 0011.2233.4482 (bia 0011.2233.4482)
  MTU 1500 bytes, BW 10000 Kbit/sec, DLY 1000 usec,
     reliability 255/255, txload 1/255, rxload 1/255
  5 minute input rate 0 bits/sec, 0 packets/sec
  5 minute output rate 0 bits/sec, 0 packets/sec
     0 packets input, 0 bytes, 0 no buffer
     0 input errors, 0 CRC, 0 frame, 0 overrun, 0 ignored
     0 packets output, 0 bytes, 0 underruns
     0 output errors, 0 collisions, 0 interface resets
GigabitEthernet1/0/3 is administratively down, line protocol is down (disabled)
  Hardware is Gigabit Ethernet, address is 0011.2233.4483 (bia 0011.2233.4483)
  MTU 1500 bytes, BW 10000 Kbit/sec, DLY 1000 usec,
     reliability 255/255, txload 1/255, rxload 1/255
  5 minute input rate 0 bits/sec, 0 packets/sec
  5 minute output rate 0 bits/sec, 0 packets/sec
     0 packets input, 0 bytes, 0 no buffer
     0 input errors, 0 CRC, 0 frame, 0 overrun, 0 ignored
     0 packets output, 0 bytes, 0 underruns
     0 output errors, 0 collisions, 0 interface resets
OUT
}
show_run() { printf 'Building configuration...\n\nCurrent configuration : 120 bytes\n!\nhostname %s\n!\ninterface GigabitEthernet1/0/1\n description uplink-to-core\n!\nend\n' "$HOST"; }
invalid() { printf "%% Invalid input detected at '^' marker.\n\n"; }

# Pages stdin: after each screenful, " --More-- " and one key (space: next page, q: stop),
# then erases the prompt with backspaces the way IOS does.
page() {
  local per=$length n=0 line key
  [ "$ALWAYS" -gt 0 ] && per=$ALWAYS
  while IFS= read -r line; do
    if [ "$per" -gt 0 ] && [ "$n" -ge $((per - 1)) ]; then
      printf ' --More-- '
      IFS= read -r -s -n1 key <&3
      printf '\b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\b'
      [ "$key" = q ] && { cat >/dev/null; return; }
      n=0
    fi
    printf '%s\n' "$line"
    n=$((n + 1))
  done
}

run_cmd() {   # $1 = command line; returns 1 when the connection should end
  local l; l=$(echo "$1" | tr -s ' ' | sed 's/^ //; s/ $//')
  case "$l" in
    "") ;;
    "terminal length "*|"term len "*) length=${l##* } ;;
    "terminal width "*|"term width "*|"terminal no monitor") ;;
    "show version"|"sh ver"|"sh version"|"show ver") show_version | page ;;
    "show ip interface brief"|"sh ip int br"|"sh ip int brief"|"show ip int brief"|"show ip int br") show_ip_int_brief | page ;;
    "show interfaces"|"sh int"|"show interface"|"sh interfaces") show_interfaces | page ;;
    "show running-config"|"sh run"|"show run")
       if [ "$mode" = user ]; then invalid; else show_run | page; fi ;;
    "show clock"|"sh clock") date -u '+*%H:%M:%S.000 UTC %a %b %d %Y' ;;
    "show hang") sleep 300 ;;
    "enable"|"en")
       if [ "$mode" = user ]; then
         printf 'Password: '; IFS= read -r -s pw; echo
         if [ "$pw" = "$ENABLE_SECRET" ]; then mode=enable; else printf '%% Bad secrets\n\n'; fi
       fi ;;
    "disable") mode=user ;;
    "configure terminal"|"conf t"|"config term"|"configure t")
       if [ "$mode" = user ]; then invalid; else
         echo "Enter configuration commands, one per line.  End with CNTL/Z."; mode=config; fi ;;
    "interface "*|"int "*) [ "${mode#config}" != "$mode" ] && mode=config-if || invalid ;;
    "end") [ "${mode#config}" != "$mode" ] && mode=enable ;;
    "exit"|"quit"|"logout")
       case "$mode" in config-if) mode=config ;; config) mode=enable ;; *) return 1 ;; esac ;;
    *) if [ "${mode#config}" != "$mode" ]; then :; else invalid; fi ;;
  esac
  return 0
}
prompt() { case "$mode" in user) printf '%s>' "$HOST" ;; enable) printf '%s#' "$HOST" ;;
                           config) printf '%s(config)#' "$HOST" ;; config-if) printf '%s(config-if)#' "$HOST" ;; esac; }

if [ -n "$SSH_ORIGINAL_COMMAND" ]; then      # exec channel: one command, no prompt
  mode=enable; length=0; run_cmd "$SSH_ORIGINAL_COMMAND"; exit 0
fi
echo; prompt
while IFS= read -r line; do
  line=${line%$'\r'}
  run_cmd "$line" || exit 0
  prompt
done
