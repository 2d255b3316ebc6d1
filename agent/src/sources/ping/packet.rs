//! ICMP echo requests and replies on the wire (RFC 792, RFC 4443), for IPv4 and IPv6.
//!
//! A request carries our probe's identity in its payload (which the target echoes back): a
//! per-process token, the group, target and probe index and the round. A reply is ours only
//! if that payload comes back intact, so a reply to another program's ping (a raw socket
//! sees every ICMP packet) is never taken for one of ours.

use std::net::IpAddr;

/// ICMPv4 echo request type.
const V4_ECHO_REQUEST: u8 = 8;
/// ICMPv4 echo reply type.
pub const V4_ECHO_REPLY: u8 = 0;
/// ICMPv6 echo request type.
const V6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply type.
pub const V6_ECHO_REPLY: u8 = 129;

/// Bytes of the echo header (type, code, checksum, identifier, sequence).
const HEADER: usize = 8;
/// Bytes of our payload.
const PAYLOAD: usize = 24;
/// Bytes of a whole echo request.
pub const REQUEST_LEN: usize = HEADER + PAYLOAD;

/// Which probe a request is: what the payload carries and the reply must give back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeId {
    /// Index of the `[[ping]]` group.
    pub group: u32,
    /// Index of the target in its group's round.
    pub target: u32,
    /// Round number of the group.
    pub round: u32,
    /// Index of the request within the round (0..count).
    pub index: u16,
}

/// An echo reply that carries one of our probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    /// Identifier field.
    pub ident: u16,
    /// Sequence field.
    pub seq: u16,
    /// The probe it answers.
    pub probe: ProbeId,
}

/// Writes an echo request for `addr`'s family into `buf`. The checksum is filled in for
/// IPv4 (raw sockets need it; for datagram sockets the kernel rewrites it together with the
/// identifier); for IPv6 the kernel always computes it.
pub fn echo_request(
    buf: &mut [u8; REQUEST_LEN],
    v6: bool,
    ident: u16,
    seq: u16,
    token: u64,
    probe: ProbeId,
) {
    buf[0] = if v6 { V6_ECHO_REQUEST } else { V4_ECHO_REQUEST };
    buf[1] = 0;
    buf[2..4].fill(0);
    buf[4..6].copy_from_slice(&ident.to_be_bytes());
    buf[6..8].copy_from_slice(&seq.to_be_bytes());
    buf[8..16].copy_from_slice(&token.to_be_bytes());
    buf[16..20].copy_from_slice(&probe.group.to_be_bytes());
    buf[20..24].copy_from_slice(&probe.target.to_be_bytes());
    buf[24..28].copy_from_slice(&probe.round.to_be_bytes());
    buf[28..30].copy_from_slice(&probe.index.to_be_bytes());
    buf[30..32].fill(0);
    if !v6 {
        let sum = checksum(&buf[..]);
        buf[2..4].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Parses a received packet: `Some` only for an echo reply carrying `token`. `ip_header`:
/// the packet starts with its IPv4 header (raw IPv4 sockets); datagram sockets and IPv6
/// sockets give the ICMP message alone.
pub fn parse_reply(packet: &[u8], from: IpAddr, ip_header: bool, token: u64) -> Option<EchoReply> {
    let icmp = if ip_header {
        let ihl = usize::from(*packet.first()? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        packet.get(ihl..)?
    } else {
        packet
    };
    if icmp.len() < REQUEST_LEN {
        return None;
    }
    let reply_type = if from.is_ipv6() {
        V6_ECHO_REPLY
    } else {
        V4_ECHO_REPLY
    };
    if icmp[0] != reply_type || icmp[1] != 0 {
        return None;
    }
    let u16_at = |i: usize| u16::from_be_bytes([icmp[i], icmp[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([icmp[i], icmp[i + 1], icmp[i + 2], icmp[i + 3]]);
    let got_token = u64::from_be_bytes(icmp[8..16].try_into().ok()?);
    if got_token != token {
        return None;
    }
    Some(EchoReply {
        ident: u16_at(4),
        seq: u16_at(6),
        probe: ProbeId {
            group: u32_at(16),
            target: u32_at(20),
            round: u32_at(24),
            index: u16_at(28),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: ProbeId = ProbeId {
        group: 3,
        target: 70_000,
        round: 9,
        index: 4,
    };

    /// What a target does: the request with its type turned into a reply (and, for IPv4,
    /// the checksum fixed).
    fn answer(req: &[u8], v6: bool) -> Vec<u8> {
        let mut r = req.to_vec();
        r[0] = if v6 { V6_ECHO_REPLY } else { V4_ECHO_REPLY };
        if !v6 {
            r[2..4].fill(0);
            let s = checksum(&r);
            r[2..4].copy_from_slice(&s.to_be_bytes());
        }
        r
    }

    #[test]
    fn a_request_round_trips_through_a_reply() {
        let mut buf = [0u8; REQUEST_LEN];
        echo_request(&mut buf, false, 0x1234, 77, 0xfeed, PROBE);
        assert_eq!(buf[0], 8);
        assert_eq!(checksum(&buf), 0, "a valid checksum sums to zero");
        let from: IpAddr = "127.0.0.1".parse().unwrap();
        let reply = answer(&buf, false);
        let got = parse_reply(&reply, from, false, 0xfeed).unwrap();
        assert_eq!(
            got,
            EchoReply {
                ident: 0x1234,
                seq: 77,
                probe: PROBE
            }
        );
        // With an IPv4 header in front (raw socket), with options (IHL 6).
        let mut with_ip = vec![
            0x46, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        with_ip.extend_from_slice(&[1, 1, 0, 0]);
        with_ip.extend_from_slice(&reply);
        assert_eq!(parse_reply(&with_ip, from, true, 0xfeed), Some(got));
        // Another process's token, our own request (a raw socket sees it on lo), a short
        // packet, an unreachable message: not ours.
        assert_eq!(parse_reply(&reply, from, false, 0xbeef), None);
        assert_eq!(parse_reply(&buf, from, false, 0xfeed), None);
        assert_eq!(parse_reply(&reply[..20], from, false, 0xfeed), None);
        let mut unreach = reply.clone();
        unreach[0] = 3;
        assert_eq!(parse_reply(&unreach, from, false, 0xfeed), None);
        assert_eq!(parse_reply(&[0x41, 0, 0], from, true, 0xfeed), None);
    }

    #[test]
    fn ipv6_requests_leave_the_checksum_to_the_kernel() {
        let mut buf = [0u8; REQUEST_LEN];
        echo_request(&mut buf, true, 1, 2, 3, PROBE);
        assert_eq!((buf[0], buf[2], buf[3]), (128, 0, 0));
        let from: IpAddr = "::1".parse().unwrap();
        let got = parse_reply(&answer(&buf, true), from, false, 3).unwrap();
        assert_eq!((got.ident, got.seq, got.probe), (1, 2, PROBE));
        // An IPv4 reply type from an IPv6 address is not a reply.
        assert_eq!(parse_reply(&answer(&buf, false), from, false, 3), None);
    }

    #[test]
    fn checksum_of_odd_lengths() {
        // RFC 1071's example bytes.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        assert_eq!(checksum(&[0xff]), !0xff00);
    }
}
