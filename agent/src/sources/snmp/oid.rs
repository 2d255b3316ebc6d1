//! [`Oid`]: an object identifier as its arcs, with the dotted text form and the BER content
//! octets SNMP messages carry.

use std::fmt;
use std::str::FromStr;

/// An object identifier (`1.3.6.1.2.1.1.3.0`). SNMP limits arcs to 32 bits (RFC 2578).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Oid(Vec<u32>);

/// Why a text or BER form is not an OID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidError {
    /// The dotted text has something that is not a 32-bit number between the dots.
    #[error("`{0}` is not a numeric OID (digits separated by dots, each below 2^32)")]
    Text(String),
    /// Fewer than two arcs, or a first arc above 2, cannot be encoded.
    #[error("`{0}` is not an encodable OID (it needs at least two arcs, the first 0, 1 or 2)")]
    Shape(String),
    /// Malformed BER content octets.
    #[error("malformed OID encoding")]
    Ber,
}

impl Oid {
    /// An OID from its arcs.
    pub fn new(arcs: impl Into<Vec<u32>>) -> Self {
        Oid(arcs.into())
    }

    /// The arcs.
    pub fn arcs(&self) -> &[u32] {
        &self.0
    }

    /// Number of arcs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no arcs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `prefix` is this OID or one of its ancestors.
    pub fn starts_with(&self, prefix: &[u32]) -> bool {
        self.0.starts_with(prefix)
    }

    /// This OID with `more` arcs appended.
    pub fn child(&self, more: &[u32]) -> Oid {
        let mut v = Vec::with_capacity(self.0.len() + more.len());
        v.extend_from_slice(&self.0);
        v.extend_from_slice(more);
        Oid(v)
    }

    /// The arcs after `prefix` joined with dots (`"1"`, `"5.1"`): a table row's index.
    pub fn suffix_after(&self, prefix: &[u32]) -> String {
        join(&self.0[prefix.len().min(self.0.len())..], ".")
    }

    /// The arcs joined with `_` (`1_3_6_1`): how an OID without a name appears in metric names.
    pub fn underscored(&self) -> String {
        join(&self.0, "_")
    }

    /// Appends the BER content octets (X.690 8.19) to `out`.
    pub fn write_ber(&self, out: &mut Vec<u8>) -> Result<(), OidError> {
        let a = &self.0;
        if a.len() < 2 || a[0] > 2 || (a[0] < 2 && a[1] > 39) {
            return Err(OidError::Shape(self.to_string()));
        }
        write_base128(out, u64::from(a[0]) * 40 + u64::from(a[1]));
        for &arc in &a[2..] {
            write_base128(out, u64::from(arc));
        }
        Ok(())
    }

    /// Decodes BER content octets (what snmp2's `Oid::as_bytes` gives).
    pub fn from_ber(bytes: &[u8]) -> Result<Oid, OidError> {
        let mut arcs = Vec::with_capacity(bytes.len() + 1);
        let mut value: u64 = 0;
        let mut in_arc = false;
        for &b in bytes {
            if !in_arc && b == 0x80 {
                return Err(OidError::Ber); // a leading 0x80 is not minimal
            }
            value = (value << 7) | u64::from(b & 0x7f);
            if value > u64::from(u32::MAX) * 40 + 2 {
                return Err(OidError::Ber);
            }
            in_arc = b & 0x80 != 0;
            if !in_arc {
                if arcs.is_empty() {
                    let (first, second) = match value {
                        0..=39 => (0, value),
                        40..=79 => (1, value - 40),
                        _ => (2, value - 80),
                    };
                    arcs.push(first as u32);
                    arcs.push(u32::try_from(second).map_err(|_| OidError::Ber)?);
                } else {
                    arcs.push(u32::try_from(value).map_err(|_| OidError::Ber)?);
                }
                value = 0;
            }
        }
        if in_arc || arcs.is_empty() {
            return Err(OidError::Ber);
        }
        Ok(Oid(arcs))
    }
}

fn write_base128(out: &mut Vec<u8>, v: u64) {
    let mut groups = [0u8; 10];
    let mut n = 0;
    let mut v = v;
    loop {
        groups[n] = (v & 0x7f) as u8;
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(groups[i] | if i > 0 { 0x80 } else { 0 });
    }
}

fn join(arcs: &[u32], sep: &str) -> String {
    let mut s = String::with_capacity(arcs.len() * 4);
    for (i, a) in arcs.iter().enumerate() {
        if i > 0 {
            s.push_str(sep);
        }
        s.push_str(&a.to_string());
    }
    s
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join(&self.0, "."))
    }
}

impl FromStr for Oid {
    type Err = OidError;

    /// `1.3.6.1.2.1.1.3.0`, with or without a leading dot.
    fn from_str(s: &str) -> Result<Oid, OidError> {
        let t = s.strip_prefix('.').unwrap_or(s);
        if t.is_empty() {
            return Err(OidError::Text(s.to_owned()));
        }
        let arcs = t
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                p.parse::<u32>().ok()
            })
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| OidError::Text(s.to_owned()))?;
        let oid = Oid(arcs);
        oid.write_ber(&mut Vec::new())?;
        Ok(oid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_errors() {
        let o: Oid = "1.3.6.1.2.1.1.3.0".parse().unwrap();
        assert_eq!(o.arcs(), &[1, 3, 6, 1, 2, 1, 1, 3, 0]);
        assert_eq!(o.to_string(), "1.3.6.1.2.1.1.3.0");
        assert_eq!(".1.3.6".parse::<Oid>().unwrap().arcs(), &[1, 3, 6]);
        for bad in [
            "",
            ".",
            "1..3",
            "1.3.x",
            "1.3.4294967296",
            "1",
            "3.1",
            "1.40",
            "-1.3",
        ] {
            assert!(bad.parse::<Oid>().is_err(), "{bad}");
        }
        assert!("1.3.4294967295".parse::<Oid>().is_ok());
    }

    #[test]
    fn ber_round_trip_agrees_with_snmp2() {
        for text in [
            "1.3.6.1.2.1.1.3.0",
            "1.3.6.1.4.1.2021.10.1.5.1",
            "1.3.6.1.2.1.31.1.1.1.6.4294967295",
            "0.39",
        ] {
            let o: Oid = text.parse().unwrap();
            let mut ber = Vec::new();
            o.write_ber(&mut ber).unwrap();
            let arcs: Vec<u64> = o.arcs().iter().map(|&a| u64::from(a)).collect();
            let theirs = snmp2::Oid::from(&arcs).unwrap();
            assert_eq!(ber, theirs.as_bytes(), "{text}");
            assert_eq!(Oid::from_ber(&ber).unwrap(), o, "{text}");
        }
        // asn1-rs refuses first arcs above 255 combined; X.690 allows them.
        let big: Oid = "2.999.3".parse().unwrap();
        let mut ber = Vec::new();
        big.write_ber(&mut ber).unwrap();
        assert_eq!(ber, [0x88, 0x37, 0x03]);
        assert_eq!(Oid::from_ber(&ber).unwrap(), big);
        assert!(Oid::from_ber(&[]).is_err());
        assert!(Oid::from_ber(&[0x2b, 0x86]).is_err(), "unterminated arc");
        assert!(
            Oid::from_ber(&[0x2b, 0x80, 0x01]).is_err(),
            "non-minimal arc"
        );
        assert!(
            Oid::from_ber(&[0x2b, 0x90, 0x80, 0x80, 0x80, 0x00]).is_err(),
            "an arc above 2^32"
        );
    }

    #[test]
    fn prefixes_and_suffixes() {
        let o: Oid = "1.3.6.1.2.1.2.2.1.10.5".parse().unwrap();
        assert!(o.starts_with(&[1, 3, 6, 1, 2, 1, 2, 2]));
        assert!(!o.starts_with(&[1, 3, 6, 1, 2, 1, 2, 3]));
        assert_eq!(o.suffix_after(&[1, 3, 6, 1, 2, 1, 2, 2, 1, 10]), "5");
        assert_eq!(o.suffix_after(&[1, 3, 6, 1, 2, 1, 2, 2, 1]), "10.5");
        assert_eq!(o.underscored(), "1_3_6_1_2_1_2_2_1_10_5");
        assert_eq!(Oid::new(vec![1, 3]).child(&[6, 1]).to_string(), "1.3.6.1");
    }
}
