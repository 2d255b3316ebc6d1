//! SNMP messages: requests encoded and answers decoded with snmp2, into owned values.
//!
//! snmp2 keeps its message builders private to its own sessions (one socket each, no
//! timeout). Its public `Pdu::to_bytes` / `Pdu::to_bytes_with_security` encode any `Pdu`,
//! though, with the v3 security (HMAC, encryption) of a `Security`: a request is a template
//! `Pdu` (parsed once from a small message built here) with its type, request id, varbinds
//! and GETBULK fields set. Answers are parsed with `Pdu::from_bytes(_with_security)`, which
//! also runs v3 engine discovery and time synchronisation on the device's `Security`.
//!
//! Unauthenticated v3 reports (unknown user, wrong digest, ...) fail snmp2's checks before
//! their varbinds are visible, so [`plain_report`] reads them here.

use std::sync::LazyLock;

use snmp2::v3::Security;
use snmp2::{MessageType, Pdu, Varbinds};

use super::oid::Oid;

/// A request.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// GET of these instances.
    Get(&'a [Oid]),
    /// GETNEXT after each of these.
    GetNext(&'a [Oid]),
    /// GETBULK with no non-repeaters.
    GetBulk {
        /// Start after these.
        oids: &'a [Oid],
        /// Rows per OID.
        max_repetitions: u32,
    },
}

impl Request<'_> {
    /// The OIDs asked for.
    pub fn oids(&self) -> &[Oid] {
        match self {
            Request::Get(o) | Request::GetNext(o) | Request::GetBulk { oids: o, .. } => o,
        }
    }

    /// `GET`, `GETNEXT`, `GETBULK`.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Get(_) => "GET",
            Request::GetNext(_) => "GETNEXT",
            Request::GetBulk { .. } => "GETBULK",
        }
    }
}

/// A value as the device sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// INTEGER (Integer32 and enumerations).
    Integer(i64),
    /// OCTET STRING.
    OctetString(Vec<u8>),
    /// OBJECT IDENTIFIER.
    Oid(Oid),
    /// IpAddress.
    IpAddress([u8; 4]),
    /// Counter32.
    Counter32(u32),
    /// Gauge32 / Unsigned32 (the same tag).
    Gauge32(u32),
    /// TimeTicks (hundredths of a second).
    TimeTicks(u32),
    /// Opaque.
    Opaque(Vec<u8>),
    /// Counter64.
    Counter64(u64),
    /// NULL.
    Null,
    /// noSuchObject exception.
    NoSuchObject,
    /// noSuchInstance exception.
    NoSuchInstance,
    /// endOfMibView exception.
    EndOfMibView,
    /// Anything else (a constructed type, BOOLEAN, ...), by its tag.
    Other(&'static str),
}

impl Value {
    /// Whether it is one of the three exceptions (or NULL): no data.
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            Value::Null | Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView
        )
    }
}

/// One OID and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Varbind {
    /// The instance.
    pub oid: Oid,
    /// Its value.
    pub value: Value,
}

/// What kind of PDU an answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Response.
    Response,
    /// A Report (v3: usmStats counters).
    Report,
    /// Something an agent should not send to a manager.
    Other,
}

/// A decoded answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Response or Report.
    pub kind: Kind,
    /// The request id it answers.
    pub request_id: i32,
    /// error-status (0 = noError).
    pub error_status: u32,
    /// error-index (1-based, 0 = none).
    pub error_index: u32,
    /// The varbinds.
    pub varbinds: Vec<Varbind>,
}

/// A message could not be built or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// snmp2 failed.
    #[error("{0}")]
    Snmp(snmp2::Error),
    /// An OID could not be encoded or decoded.
    #[error(transparent)]
    Oid(#[from] super::oid::OidError),
    /// The answer's community is not the one asked with.
    #[error("the answer carries another community")]
    Community,
}

impl From<snmp2::Error> for CodecError {
    fn from(e: snmp2::Error) -> Self {
        CodecError::Snmp(e)
    }
}

/// Appends a BER tag-length-value.
fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = (n as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

fn int(out: &mut Vec<u8>, v: i64) {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(out, 0x02, &bytes[start..]);
}

fn seq(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    f(&mut inner);
    tlv(out, 0x30, &inner);
}

/// The contents of a VarBindList: `SEQUENCE { oid, NULL }` for each OID.
fn varbind_list(oids: &[Oid]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(oids.len() * 16);
    let mut ber = Vec::with_capacity(16);
    for oid in oids {
        ber.clear();
        oid.write_ber(&mut ber)?;
        let mut vb = Vec::with_capacity(ber.len() + 4);
        tlv(&mut vb, 0x06, &ber);
        vb.extend_from_slice(&[0x05, 0x00]);
        tlv(&mut out, 0x30, &vb);
    }
    Ok(out)
}

/// An empty GetResponse PDU: request id 0, no error, no varbinds.
fn empty_pdu(out: &mut Vec<u8>) {
    let mut pdu = Vec::new();
    int(&mut pdu, 0);
    int(&mut pdu, 0);
    int(&mut pdu, 0);
    seq(&mut pdu, |_| {});
    tlv(out, 0xa2, &pdu);
}

/// The v2c template message.
static V2C_TEMPLATE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut m = Vec::new();
    seq(&mut m, |m| {
        int(m, 1);
        tlv(m, 0x04, b"");
        empty_pdu(m);
    });
    m
});

/// Engine id of the v3 template (never sent).
const TEMPLATE_ENGINE: &[u8] = b"logops-template";

/// A v3 message at noAuthNoPriv from engine [`TEMPLATE_ENGINE`], boots 1, time 1.
fn v3_template_bytes() -> Vec<u8> {
    let mut m = Vec::new();
    seq(&mut m, |m| {
        int(m, 3);
        seq(m, |g| {
            int(g, 0); // msgID
            int(g, 1472); // msgMaxSize
            tlv(g, 0x04, &[0]); // msgFlags
            int(g, 3); // USM
        });
        let mut usm = Vec::new();
        seq(&mut usm, |u| {
            tlv(u, 0x04, TEMPLATE_ENGINE);
            int(u, 1);
            int(u, 1);
            tlv(u, 0x04, b"");
            tlv(u, 0x04, b"");
            tlv(u, 0x04, b"");
        });
        tlv(m, 0x04, &usm);
        seq(m, |s| {
            tlv(s, 0x04, TEMPLATE_ENGINE);
            tlv(s, 0x04, b"");
            empty_pdu(s);
        });
    });
    m
}

/// The v3 template `Pdu`. Parsing borrows the message and a `Security` for the `Pdu`'s
/// lifetime, so both live for the whole process (a few hundred bytes, once).
static V3_TEMPLATE: LazyLock<Pdu<'static>> = LazyLock::new(|| {
    let bytes: &'static [u8] = Box::leak(v3_template_bytes().into_boxed_slice());
    let security = Security::new(b"", b"")
        .with_auth(snmp2::v3::Auth::NoAuthNoPriv)
        .with_engine_boots_and_time(1, 1)
        .with_engine_id(TEMPLATE_ENGINE)
        .expect("noAuthNoPriv needs no keys");
    let security: &'static mut Security = Box::leak(Box::new(security));
    Pdu::from_bytes_with_security(bytes, Some(security)).expect("the v3 template parses")
});

static V2C_TEMPLATE_PDU: LazyLock<Pdu<'static>> =
    LazyLock::new(|| Pdu::from_bytes(&V2C_TEMPLATE).expect("the v2c template parses"));

fn fill<'a>(template: &Pdu<'a>, id: i32, req: &Request<'_>, vbs: &'a [u8]) -> Pdu<'a> {
    let mut p = template.clone();
    p.req_id = id;
    p.varbinds = Varbinds::from_bytes(vbs);
    // `to_bytes*` writes error-status and error-index where a GETBULK has non-repeaters and
    // max-repetitions.
    (p.message_type, p.error_status, p.error_index) = match *req {
        Request::Get(_) => (MessageType::GetRequest, 0, 0),
        Request::GetNext(_) => (MessageType::GetNextRequest, 0, 0),
        Request::GetBulk {
            max_repetitions, ..
        } => (MessageType::GetBulkRequest, 0, max_repetitions),
    };
    p
}

/// Encodes a v2c request.
pub fn encode_v2c(community: &[u8], id: i32, req: &Request<'_>) -> Result<Vec<u8>, CodecError> {
    let vbs = varbind_list(req.oids())?;
    let mut p = fill(&V2C_TEMPLATE_PDU, id, req, &vbs);
    p.community = community;
    Ok(p.to_bytes()?)
}

/// Encodes a v3 request with the device's security state (its msgID is `id` too).
pub fn encode_v3(security: &Security, id: i32, req: &Request<'_>) -> Result<Vec<u8>, CodecError> {
    let vbs = varbind_list(req.oids())?;
    let p = fill(&V3_TEMPLATE, id, req, &vbs);
    Ok(p.to_bytes_with_security(Some(security))?)
}

/// The v3 engine discovery message: noAuthNoPriv, empty user and engine id, a GET without
/// varbinds; the agent answers with a usmStatsUnknownEngineIDs report carrying its engine id,
/// boots and time.
pub fn encode_discovery(id: i32) -> Result<Vec<u8>, CodecError> {
    let security = Security::new(b"", b"").with_auth(snmp2::v3::Auth::NoAuthNoPriv);
    let p = fill(&V3_TEMPLATE, id, &Request::Get(&[]), &[]);
    Ok(p.to_bytes_with_security(Some(&security))?)
}

fn convert(value: snmp2::Value<'_>) -> Value {
    use snmp2::Value as S;
    match value {
        S::Integer(i) => Value::Integer(i),
        S::OctetString(s) => Value::OctetString(s.to_vec()),
        S::ObjectIdentifier(o) => match Oid::from_ber(o.as_bytes()) {
            Ok(o) => Value::Oid(o),
            Err(_) => Value::Other("malformed OBJECT IDENTIFIER"),
        },
        S::IpAddress(a) => Value::IpAddress(a),
        S::Counter32(c) => Value::Counter32(c),
        S::Unsigned32(g) => Value::Gauge32(g),
        S::Timeticks(t) => Value::TimeTicks(t),
        S::Opaque(o) => Value::Opaque(o.to_vec()),
        S::Counter64(c) => Value::Counter64(c),
        S::Null => Value::Null,
        S::NoSuchObject => Value::NoSuchObject,
        S::NoSuchInstance => Value::NoSuchInstance,
        S::EndOfMibView => Value::EndOfMibView,
        S::Boolean(_) => Value::Other("BOOLEAN"),
        _ => Value::Other("a constructed value"),
    }
}

fn answer(pdu: Pdu<'_>) -> Result<Answer, CodecError> {
    let kind = match pdu.message_type {
        MessageType::Response => Kind::Response,
        MessageType::Report => Kind::Report,
        _ => Kind::Other,
    };
    let mut varbinds = Vec::new();
    for (oid, value) in pdu.varbinds {
        varbinds.push(Varbind {
            oid: Oid::from_ber(oid.as_bytes())?,
            value: convert(value),
        });
    }
    Ok(Answer {
        kind,
        request_id: pdu.req_id,
        error_status: pdu.error_status,
        error_index: pdu.error_index,
        varbinds,
    })
}

/// Decodes a v2c answer, which must carry `community`.
pub fn decode_v2c(bytes: &[u8], community: &[u8]) -> Result<Answer, CodecError> {
    let pdu = Pdu::from_bytes(bytes)?;
    if pdu.community != community {
        return Err(CodecError::Community);
    }
    answer(pdu)
}

/// Decodes a v3 answer with the device's security state (which it updates: engine id,
/// boots and time). `Err(Snmp(AuthUpdated))` means discovery or time sync happened: send
/// again.
pub fn decode_v3(bytes: &[u8], security: &mut Security) -> Result<Answer, CodecError> {
    let pdu = Pdu::from_bytes_with_security(bytes, Some(security))?;
    answer(pdu)
}

/// The id a message is matched by: the request-id of a v1/v2c message, the msgID of a v3
/// one (snmp2 uses the request id as msgID). Read without decrypting.
pub fn peek_id(bytes: &[u8]) -> Option<i32> {
    let mut r = snmp2::AsnReader::from_bytes(bytes);
    let mut msg = snmp2::AsnReader::from_bytes(r.read_raw(0x30).ok()?);
    let version = msg.read_asn_integer().ok()?;
    let id = if version == 3 {
        let mut global = snmp2::AsnReader::from_bytes(msg.read_raw(0x30).ok()?);
        global.read_asn_integer().ok()?
    } else {
        msg.read_asn_octetstring().ok()?;
        let tag = msg.peek_byte().ok()?;
        let mut pdu = snmp2::AsnReader::from_bytes(msg.read_raw(tag).ok()?);
        pdu.read_asn_integer().ok()?
    };
    i32::try_from(id).ok()
}

/// A v3 report sent without privacy (as USM errors always are): its varbinds, read without
/// checking authentication. `None` if the message is not such a report.
pub fn plain_report(bytes: &[u8]) -> Option<Answer> {
    let mut r = snmp2::AsnReader::from_bytes(bytes);
    let mut msg = snmp2::AsnReader::from_bytes(r.read_raw(0x30).ok()?);
    if msg.read_asn_integer().ok()? != 3 {
        return None;
    }
    let mut global = snmp2::AsnReader::from_bytes(msg.read_raw(0x30).ok()?);
    global.read_asn_integer().ok()?;
    global.read_asn_integer().ok()?;
    let flags = *global.read_asn_octetstring().ok()?.first()?;
    if flags & 0x02 != 0 {
        return None; // encrypted
    }
    msg.read_asn_octetstring().ok()?; // security parameters
    let mut scoped = snmp2::AsnReader::from_bytes(msg.read_raw(0x30).ok()?);
    scoped.read_asn_octetstring().ok()?;
    scoped.read_asn_octetstring().ok()?;
    let tag = scoped.peek_byte().ok()?;
    if tag != 0xa8 {
        return None;
    }
    let mut pdu = snmp2::AsnReader::from_bytes(scoped.read_raw(tag).ok()?);
    let request_id = i32::try_from(pdu.read_asn_integer().ok()?).ok()?;
    let error_status = u32::try_from(pdu.read_asn_integer().ok()?).ok()?;
    let error_index = u32::try_from(pdu.read_asn_integer().ok()?).ok()?;
    let list = pdu.read_raw(0x30).ok()?;
    let mut varbinds = Vec::new();
    for (oid, value) in Varbinds::from_bytes(list) {
        varbinds.push(Varbind {
            oid: Oid::from_ber(oid.as_bytes()).ok()?,
            value: convert(value),
        });
    }
    Some(Answer {
        kind: Kind::Report,
        request_id,
        error_status,
        error_index,
        varbinds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oids(list: &[&str]) -> Vec<Oid> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn v2c_requests_decode_back() {
        let o = oids(&["1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"]);
        for (req, ty, f2, f3) in [
            (Request::Get(&o), MessageType::GetRequest, 0, 0),
            (Request::GetNext(&o), MessageType::GetNextRequest, 0, 0),
            (
                Request::GetBulk {
                    oids: &o,
                    max_repetitions: 25,
                },
                MessageType::GetBulkRequest,
                0,
                25,
            ),
        ] {
            let bytes = encode_v2c(b"public", 4242, &req).unwrap();
            assert_eq!(peek_id(&bytes), Some(4242));
            let pdu = Pdu::from_bytes(&bytes).unwrap();
            assert_eq!(pdu.message_type, ty);
            assert_eq!(pdu.community, b"public");
            assert_eq!(pdu.req_id, 4242);
            assert_eq!((pdu.error_status, pdu.error_index), (f2, f3));
            let got: Vec<Oid> = pdu
                .varbinds
                .map(|(oid, v)| {
                    assert!(matches!(v, snmp2::Value::Null));
                    Oid::from_ber(oid.as_bytes()).unwrap()
                })
                .collect();
            assert_eq!(got, o);
        }
    }

    #[test]
    fn bulk_fields_are_on_the_wire_in_order() {
        // GetBulkRequest: request-id, non-repeaters (0), max-repetitions (7).
        let o = oids(&["1.3.6.1.2.1.2.2"]);
        let bytes = encode_v2c(
            b"c",
            9,
            &Request::GetBulk {
                oids: &o,
                max_repetitions: 7,
            },
        )
        .unwrap();
        let needle = [0xa5];
        let at = bytes.windows(1).position(|w| w == needle).unwrap();
        // tag, length, then INTEGER 9, INTEGER 0, INTEGER 7.
        assert_eq!(
            &bytes[at + 2..at + 11],
            &[0x02, 0x01, 9, 0x02, 0x01, 0, 0x02, 0x01, 7]
        );
    }

    #[test]
    fn ber_integers_and_lengths() {
        for (v, want) in [
            (0i64, vec![0x02, 1, 0]),
            (127, vec![0x02, 1, 0x7f]),
            (128, vec![0x02, 2, 0, 0x80]),
            (-1, vec![0x02, 1, 0xff]),
            (-129, vec![0x02, 2, 0xff, 0x7f]),
            (i64::from(i32::MAX), vec![0x02, 4, 0x7f, 0xff, 0xff, 0xff]),
        ] {
            let mut out = Vec::new();
            int(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
        let mut out = Vec::new();
        tlv(&mut out, 0x04, &[7u8; 300]);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn v3_discovery_and_requests_are_v3_messages() {
        let d = encode_discovery(77).unwrap();
        assert_eq!(peek_id(&d), Some(77));
        let sec = Security::new(b"monitor", b"")
            .with_auth(snmp2::v3::Auth::NoAuthNoPriv)
            .with_engine_boots_and_time(3, 1000)
            .with_engine_id(b"\x80\x00\x1f\x88\x80engine")
            .unwrap();
        let o = oids(&["1.3.6.1.2.1.1.3.0"]);
        let bytes = encode_v3(&sec, 78, &Request::Get(&o)).unwrap();
        assert_eq!(peek_id(&bytes), Some(78));
        // The agent's view: parse it back with the same (noAuthNoPriv) state.
        let mut agent = sec.clone();
        let pdu = Pdu::from_bytes_with_security(&bytes, Some(&mut agent)).unwrap();
        assert_eq!(pdu.message_type, MessageType::GetRequest);
        assert_eq!(pdu.req_id, 78);
        assert_eq!(pdu.community, b"monitor");
    }

    #[test]
    fn garbage_is_not_an_id_or_a_report() {
        assert_eq!(peek_id(b""), None);
        assert_eq!(peek_id(&[0x30, 0x03, 0x02, 0x01]), None);
        assert!(plain_report(&V2C_TEMPLATE).is_none());
        assert!(
            plain_report(&v3_template_bytes()).is_none(),
            "a response, not a report"
        );
    }
}
