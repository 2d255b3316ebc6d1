"""An SNMP agent that answers GET and GETNEXT but has no GETBULK, like some embedded agents.

It is pysnmp's own command responder with only the GET and GETNEXT applications registered,
serving pysnmp's built-in MIB (SNMPv2-MIB system group, SNMP-USER-BASED-SM-MIB tables, ...).
To a GETBULK it answers nothing over SNMPv2c and a report of snmpUnknownPDUHandlers over
SNMPv3 (RFC 3412 4.2.2.1.2), exactly as pysnmp's dispatcher does for an unregistered PDU
type.

    python snmp_nobulk.py PORT COMMUNITY V3USER AUTHPASS PRIVPASS

v2c: COMMUNITY; v3: V3USER with HMAC-SHA-96 + CFB-AES-128 (authPriv). Binds 127.0.0.1:PORT.
"""
import sys

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context

port, community, user, auth, priv = sys.argv[1:6]
snmp_engine = engine.SnmpEngine()
config.add_transport(
    snmp_engine,
    udp.DOMAIN_NAME,
    udp.UdpTransport().open_server_mode(("127.0.0.1", int(port))),
)
config.add_v1_system(snmp_engine, "v2c-area", community)
config.add_v3_user(
    snmp_engine,
    user,
    config.USM_AUTH_HMAC96_SHA,
    auth,
    config.USM_PRIV_CFB128_AES,
    priv,
)
config.add_vacm_user(snmp_engine, 2, "v2c-area", "noAuthNoPriv", (1, 3, 6), ())
config.add_vacm_user(snmp_engine, 3, user, "authPriv", (1, 3, 6), ())
snmp_context = context.SnmpContext(snmp_engine)
cmdrsp.GetCommandResponder(snmp_engine, snmp_context)
cmdrsp.NextCommandResponder(snmp_engine, snmp_context)
# No cmdrsp.BulkCommandResponder: GETBULK has no application.
snmp_engine.open_dispatcher()
