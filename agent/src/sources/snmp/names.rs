//! Built-in names for the common objects, so no MIB files are needed: the SNMPv2-MIB system
//! group, IF-MIB `ifTable` / `ifXTable`, HOST-RESOURCES-MIB `hrSystem`, `hrStorageTable` and
//! `hrProcessorTable`. Numeric OIDs always work as well.
//!
//! Each table knows its index label (`ifIndex`, `hrStorageIndex`, ...), which of its columns
//! label the row's metrics instead of being values (`ifName`, `ifAlias`, `hrStorageType`,
//! `hrStorageDescr`), and which label columns live in a companion table (an `ifTable` row is
//! labelled with `ifName` and `ifAlias` from `ifXTable`).

use std::collections::HashMap;
use std::sync::LazyLock;

use super::oid::Oid;

/// What a table column is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Numbers become metrics; strings go into the row's record.
    Value,
    /// The value labels every metric of the row.
    Label,
    /// Left out (the index repeated as a value, deprecated or constant columns).
    Skip,
}

/// One column of a table.
#[derive(Debug, PartialEq, Eq)]
pub struct Column {
    /// Its sub-identifier under the entry.
    pub sub: u32,
    /// The MIB name (`ifHCInOctets`).
    pub name: &'static str,
    /// What it is used for.
    pub role: Role,
}

/// A label column, possibly of another table with the same index.
#[derive(Debug, PartialEq, Eq)]
pub struct LabelColumn {
    /// The entry OID of the table that has the column.
    pub entry: &'static [u32],
    /// The column's sub-identifier.
    pub sub: u32,
    /// The label name (the column's MIB name).
    pub name: &'static str,
}

/// A conceptual table.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// The table's name (`ifTable`).
    pub name: &'static str,
    /// The entry's name (`ifEntry`).
    pub entry_name: &'static str,
    /// The table OID; the entry is this plus `.1`.
    pub oid: &'static [u32],
    /// The label that carries the row index.
    pub index: &'static str,
    /// The columns.
    pub columns: &'static [Column],
    /// The columns that label every metric of a row.
    pub labels: &'static [LabelColumn],
}

impl Table {
    /// The entry OID (the table OID plus `.1`).
    pub fn entry(&self) -> Oid {
        Oid::new(self.oid).child(&[1])
    }

    /// The column with this sub-identifier.
    pub fn column(&self, sub: u32) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.sub == sub)
    }
}

/// A scalar object; its one instance is the OID plus `.0`.
#[derive(Debug, PartialEq, Eq)]
pub struct Scalar {
    /// The MIB name (`sysUpTime`).
    pub name: &'static str,
    /// The object OID (without the `.0`).
    pub oid: &'static [u32],
}

/// A named subtree (a group) or a named OID value (`hrStorageFixedDisk`).
#[derive(Debug, PartialEq, Eq)]
pub struct Named {
    /// The name.
    pub name: &'static str,
    /// Its OID.
    pub oid: &'static [u32],
}

const fn col(sub: u32, name: &'static str) -> Column {
    Column {
        sub,
        name,
        role: Role::Value,
    }
}
const fn label(sub: u32, name: &'static str) -> Column {
    Column {
        sub,
        name,
        role: Role::Label,
    }
}
const fn skip(sub: u32, name: &'static str) -> Column {
    Column {
        sub,
        name,
        role: Role::Skip,
    }
}

const IF_X_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1];
const IF_LABELS: &[LabelColumn] = &[
    LabelColumn {
        entry: IF_X_ENTRY,
        sub: 1,
        name: "ifName",
    },
    LabelColumn {
        entry: IF_X_ENTRY,
        sub: 18,
        name: "ifAlias",
    },
];
const HR_STORAGE_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 25, 2, 3, 1];
const SYS_OR_ENTRY: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 9, 1];

/// The built-in tables.
pub static TABLES: &[Table] = &[
    Table {
        name: "sysORTable",
        entry_name: "sysOREntry",
        oid: &[1, 3, 6, 1, 2, 1, 1, 9],
        index: "sysORIndex",
        columns: &[
            skip(1, "sysORIndex"),
            col(2, "sysORID"),
            label(3, "sysORDescr"),
            col(4, "sysORUpTime"),
        ],
        labels: &[LabelColumn {
            entry: SYS_OR_ENTRY,
            sub: 3,
            name: "sysORDescr",
        }],
    },
    Table {
        name: "ifTable",
        entry_name: "ifEntry",
        oid: &[1, 3, 6, 1, 2, 1, 2, 2],
        index: "ifIndex",
        columns: &[
            skip(1, "ifIndex"),
            col(2, "ifDescr"),
            col(3, "ifType"),
            col(4, "ifMtu"),
            col(5, "ifSpeed"),
            col(6, "ifPhysAddress"),
            col(7, "ifAdminStatus"),
            col(8, "ifOperStatus"),
            col(9, "ifLastChange"),
            col(10, "ifInOctets"),
            col(11, "ifInUcastPkts"),
            col(12, "ifInNUcastPkts"),
            col(13, "ifInDiscards"),
            col(14, "ifInErrors"),
            col(15, "ifInUnknownProtos"),
            col(16, "ifOutOctets"),
            col(17, "ifOutUcastPkts"),
            col(18, "ifOutNUcastPkts"),
            col(19, "ifOutDiscards"),
            col(20, "ifOutErrors"),
            col(21, "ifOutQLen"),
            skip(22, "ifSpecific"),
        ],
        labels: IF_LABELS,
    },
    Table {
        name: "ifXTable",
        entry_name: "ifXEntry",
        oid: &[1, 3, 6, 1, 2, 1, 31, 1, 1],
        index: "ifIndex",
        columns: &[
            label(1, "ifName"),
            col(2, "ifInMulticastPkts"),
            col(3, "ifInBroadcastPkts"),
            col(4, "ifOutMulticastPkts"),
            col(5, "ifOutBroadcastPkts"),
            col(6, "ifHCInOctets"),
            col(7, "ifHCInUcastPkts"),
            col(8, "ifHCInMulticastPkts"),
            col(9, "ifHCInBroadcastPkts"),
            col(10, "ifHCOutOctets"),
            col(11, "ifHCOutUcastPkts"),
            col(12, "ifHCOutMulticastPkts"),
            col(13, "ifHCOutBroadcastPkts"),
            col(14, "ifLinkUpDownTrapEnable"),
            col(15, "ifHighSpeed"),
            col(16, "ifPromiscuousMode"),
            col(17, "ifConnectorPresent"),
            label(18, "ifAlias"),
            col(19, "ifCounterDiscontinuityTime"),
        ],
        labels: IF_LABELS,
    },
    Table {
        name: "hrStorageTable",
        entry_name: "hrStorageEntry",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 3],
        index: "hrStorageIndex",
        columns: &[
            skip(1, "hrStorageIndex"),
            label(2, "hrStorageType"),
            label(3, "hrStorageDescr"),
            col(4, "hrStorageAllocationUnits"),
            col(5, "hrStorageSize"),
            col(6, "hrStorageUsed"),
            col(7, "hrStorageAllocationFailures"),
        ],
        labels: &[
            LabelColumn {
                entry: HR_STORAGE_ENTRY,
                sub: 2,
                name: "hrStorageType",
            },
            LabelColumn {
                entry: HR_STORAGE_ENTRY,
                sub: 3,
                name: "hrStorageDescr",
            },
        ],
    },
    Table {
        name: "hrProcessorTable",
        entry_name: "hrProcessorEntry",
        oid: &[1, 3, 6, 1, 2, 1, 25, 3, 3],
        index: "hrDeviceIndex",
        // hrProcessorFrwID is `0.0` on nearly every agent.
        columns: &[skip(1, "hrProcessorFrwID"), col(2, "hrProcessorLoad")],
        labels: &[],
    },
];

/// The built-in scalars.
pub static SCALARS: &[Scalar] = &[
    Scalar {
        name: "sysDescr",
        oid: &[1, 3, 6, 1, 2, 1, 1, 1],
    },
    Scalar {
        name: "sysObjectID",
        oid: &[1, 3, 6, 1, 2, 1, 1, 2],
    },
    Scalar {
        name: "sysUpTime",
        oid: &[1, 3, 6, 1, 2, 1, 1, 3],
    },
    Scalar {
        name: "sysContact",
        oid: &[1, 3, 6, 1, 2, 1, 1, 4],
    },
    Scalar {
        name: "sysName",
        oid: &[1, 3, 6, 1, 2, 1, 1, 5],
    },
    Scalar {
        name: "sysLocation",
        oid: &[1, 3, 6, 1, 2, 1, 1, 6],
    },
    Scalar {
        name: "sysServices",
        oid: &[1, 3, 6, 1, 2, 1, 1, 7],
    },
    Scalar {
        name: "sysORLastChange",
        oid: &[1, 3, 6, 1, 2, 1, 1, 8],
    },
    Scalar {
        name: "ifNumber",
        oid: &[1, 3, 6, 1, 2, 1, 2, 1],
    },
    Scalar {
        name: "ifTableLastChange",
        oid: &[1, 3, 6, 1, 2, 1, 31, 1, 5],
    },
    Scalar {
        name: "hrSystemUptime",
        oid: &[1, 3, 6, 1, 2, 1, 25, 1, 1],
    },
    Scalar {
        name: "hrSystemNumUsers",
        oid: &[1, 3, 6, 1, 2, 1, 25, 1, 5],
    },
    Scalar {
        name: "hrSystemProcesses",
        oid: &[1, 3, 6, 1, 2, 1, 25, 1, 6],
    },
    Scalar {
        name: "hrSystemMaxProcesses",
        oid: &[1, 3, 6, 1, 2, 1, 25, 1, 7],
    },
    Scalar {
        name: "hrMemorySize",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 2],
    },
];

/// Named subtrees that can be walked.
pub static GROUPS: &[Named] = &[
    Named {
        name: "system",
        oid: &[1, 3, 6, 1, 2, 1, 1],
    },
    Named {
        name: "interfaces",
        oid: &[1, 3, 6, 1, 2, 1, 2],
    },
    Named {
        name: "ifMIBObjects",
        oid: &[1, 3, 6, 1, 2, 1, 31, 1],
    },
    Named {
        name: "host",
        oid: &[1, 3, 6, 1, 2, 1, 25],
    },
    Named {
        name: "hrSystem",
        oid: &[1, 3, 6, 1, 2, 1, 25, 1],
    },
    Named {
        name: "hrStorage",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2],
    },
];

/// OID values with a name: what an `hrStorageType` label says.
pub static VALUES: &[Named] = &[
    Named {
        name: "hrStorageOther",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 1],
    },
    Named {
        name: "hrStorageRam",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 2],
    },
    Named {
        name: "hrStorageVirtualMemory",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 3],
    },
    Named {
        name: "hrStorageFixedDisk",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 4],
    },
    Named {
        name: "hrStorageRemovableDisk",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 5],
    },
    Named {
        name: "hrStorageFloppyDisk",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 6],
    },
    Named {
        name: "hrStorageCompactDisc",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 7],
    },
    Named {
        name: "hrStorageRamDisk",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 8],
    },
    Named {
        name: "hrStorageFlashMemory",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 9],
    },
    Named {
        name: "hrStorageNetworkDisk",
        oid: &[1, 3, 6, 1, 2, 1, 25, 2, 1, 10],
    },
];

/// Every name → its OID, and whether it is a scalar (whose instance is `.0`).
static BY_NAME: LazyLock<HashMap<&'static str, (Oid, bool)>> = LazyLock::new(|| {
    let mut m = HashMap::new();
    for t in TABLES {
        m.insert(t.name, (Oid::new(t.oid), false));
        m.insert(t.entry_name, (t.entry(), false));
        for c in t.columns {
            m.insert(c.name, (t.entry().child(&[c.sub]), false));
        }
    }
    for s in SCALARS {
        m.insert(s.name, (Oid::new(s.oid), true));
    }
    for g in GROUPS.iter().chain(VALUES) {
        m.insert(g.name, (Oid::new(g.oid), false));
    }
    m
});

/// Scalar object OID → the scalar.
static SCALAR_BY_OID: LazyLock<HashMap<&'static [u32], &'static Scalar>> =
    LazyLock::new(|| SCALARS.iter().map(|s| (s.oid, s)).collect());

/// Why a name does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is neither a numeric OID nor a built-in name{hint}")]
pub struct UnknownName {
    text: String,
    hint: String,
}

/// Resolves `[MODULE::]name[.index]` or a numeric OID. With `scalar_instance`, a bare scalar
/// name gets its `.0` (`sysUpTime` → `1.3.6.1.2.1.1.3.0`), as a GET needs the instance.
pub fn resolve(text: &str, scalar_instance: bool) -> Result<Oid, UnknownName> {
    let t = text.trim();
    if t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return t.parse().map_err(|e: super::oid::OidError| UnknownName {
            text: text.to_owned(),
            hint: format!(" ({e})"),
        });
    }
    let without_module = t.rsplit_once("::").map_or(t, |(_, n)| n);
    let (name, suffix) = match without_module.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (without_module, None),
    };
    let Some((oid, is_scalar)) = BY_NAME.get(name) else {
        let best = BY_NAME
            .keys()
            .map(|k| (strsim::jaro_winkler(name, k), *k))
            .filter(|(s, _)| *s >= 0.85)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        return Err(UnknownName {
            text: text.to_owned(),
            hint: match best {
                Some((_, k)) => format!("; did you mean `{k}`?"),
                None => "; use the numeric OID (built-in: SNMPv2-MIB system, IF-MIB ifTable/ifXTable, HOST-RESOURCES-MIB hrSystem/hrStorageTable/hrProcessorTable)".into(),
            },
        });
    };
    match suffix {
        None if *is_scalar && scalar_instance => Ok(oid.child(&[0])),
        None => Ok(oid.clone()),
        Some(s) => {
            let rest: Oid = format!("0.0.{s}").parse().map_err(|_| UnknownName {
                text: text.to_owned(),
                hint: format!(" (`.{s}` after `{name}` is not a numeric index)"),
            })?;
            Ok(oid.child(&rest.arcs()[2..]))
        }
    }
}

/// What a varbind's OID is, as far as the built-in names know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// The instance (`.0`) of a scalar.
    Scalar(&'static Scalar),
    /// A cell of a table: its column and the row index (`"3"`, `"1.4"`).
    Cell {
        /// The table.
        table: &'static Table,
        /// The column.
        column: &'static Column,
        /// The row index, the arcs after the column joined with dots.
        index: String,
    },
    /// Nothing with a built-in name.
    Unknown,
}

/// Classifies a varbind's OID.
pub fn classify(oid: &Oid) -> Known {
    let a = oid.arcs();
    if let Some((&0, object)) = a.split_last() {
        if let Some(s) = SCALAR_BY_OID.get(object) {
            return Known::Scalar(s);
        }
    }
    for t in TABLES {
        let entry_len = t.oid.len() + 1;
        if a.len() > entry_len + 1 && a.starts_with(t.oid) && a[t.oid.len()] == 1 {
            if let Some(column) = t.column(a[entry_len]) {
                return Known::Cell {
                    table: t,
                    column,
                    index: oid.suffix_after(&a[..entry_len + 1]),
                };
            }
        }
    }
    Known::Unknown
}

/// The built-in table whose entry is `entry`.
pub fn table_of_entry(entry: &[u32]) -> Option<&'static Table> {
    TABLES.iter().find(|t| {
        entry.len() == t.oid.len() + 1 && entry.starts_with(t.oid) && entry.ends_with(&[1])
    })
}

/// The name of an OID value (`hrStorageFixedDisk`), if it has one.
pub fn value_name(oid: &Oid) -> Option<&'static str> {
    VALUES.iter().find(|v| v.oid == oid.arcs()).map(|v| v.name)
}

/// The name of the object at exactly `oid` (table, entry, column, scalar or group), for
/// messages: `ifTable`.
pub fn name_of(oid: &Oid) -> Option<&'static str> {
    BY_NAME.iter().find(|(_, (o, _))| o == oid).map(|(n, _)| *n)
}

/// `ifTable (1.3.6.1.2.1.2.2)`, `sysUpTime.0 (1.3.6.1.2.1.1.3.0)`, or the bare OID.
pub fn describe(oid: &Oid) -> String {
    if let Some(n) = name_of(oid) {
        return format!("{n} ({oid})");
    }
    match classify(oid) {
        Known::Scalar(s) => format!("{}.0 ({oid})", s.name),
        Known::Cell { column, index, .. } => format!("{}.{index} ({oid})", column.name),
        Known::Unknown => oid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(s: &str) -> Oid {
        s.parse().unwrap()
    }

    #[test]
    fn names_resolve() {
        assert_eq!(
            resolve("sysUpTime.0", false).unwrap(),
            oid("1.3.6.1.2.1.1.3.0")
        );
        assert_eq!(
            resolve("sysUpTime", true).unwrap(),
            oid("1.3.6.1.2.1.1.3.0")
        );
        assert_eq!(resolve("sysUpTime", false).unwrap(), oid("1.3.6.1.2.1.1.3"));
        assert_eq!(resolve("ifTable", false).unwrap(), oid("1.3.6.1.2.1.2.2"));
        assert_eq!(
            resolve("IF-MIB::ifXTable", false).unwrap(),
            oid("1.3.6.1.2.1.31.1.1")
        );
        assert_eq!(
            resolve("ifHCInOctets.3", true).unwrap(),
            oid("1.3.6.1.2.1.31.1.1.1.6.3")
        );
        assert_eq!(
            resolve("hrStorageTable", false).unwrap(),
            oid("1.3.6.1.2.1.25.2.3")
        );
        assert_eq!(
            resolve("hrProcessorLoad", false).unwrap(),
            oid("1.3.6.1.2.1.25.3.3.1.2")
        );
        assert_eq!(
            resolve(".1.3.6.1.2.1.1.5.0", true).unwrap(),
            oid("1.3.6.1.2.1.1.5.0")
        );
        let e = resolve("ifTabel", false).unwrap_err().to_string();
        assert!(e.contains("did you mean `ifTable`"), "{e}");
        let e = resolve("frobnicate", false).unwrap_err().to_string();
        assert!(e.contains("use the numeric OID"), "{e}");
        assert!(resolve("sysUpTime.x", false).is_err());
        assert!(resolve("1.3.6.x", false).is_err());
    }

    #[test]
    fn every_name_is_unique_and_columns_are_sorted() {
        let mut seen = std::collections::HashSet::new();
        for t in TABLES {
            assert!(seen.insert(t.name) && seen.insert(t.entry_name));
            for w in t.columns.windows(2) {
                assert!(w[0].sub < w[1].sub, "{}", t.name);
            }
            for c in t.columns {
                assert!(seen.insert(c.name), "{} twice", c.name);
            }
            for l in t.labels {
                let owner = table_of_entry(l.entry).expect("label columns are in built-in tables");
                assert_eq!(owner.column(l.sub).unwrap().name, l.name);
                assert_eq!(owner.index, t.index, "same index as {}", t.name);
            }
        }
        for s in SCALARS {
            assert!(seen.insert(s.name), "{} twice", s.name);
        }
        for g in GROUPS.iter().chain(VALUES) {
            assert!(seen.insert(g.name), "{} twice", g.name);
        }
        assert_eq!(BY_NAME.len(), seen.len());
    }

    #[test]
    fn varbinds_are_classified() {
        match classify(&oid("1.3.6.1.2.1.1.3.0")) {
            Known::Scalar(s) => assert_eq!(s.name, "sysUpTime"),
            other => panic!("{other:?}"),
        }
        match classify(&oid("1.3.6.1.2.1.31.1.1.1.6.4")) {
            Known::Cell {
                table,
                column,
                index,
            } => {
                assert_eq!(
                    (table.name, column.name, index.as_str()),
                    ("ifXTable", "ifHCInOctets", "4")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(classify(&oid("1.3.6.1.2.1.1.3.1")), Known::Unknown);
        assert_eq!(classify(&oid("1.3.6.1.2.1.2.2.1.99.1")), Known::Unknown);
        assert_eq!(
            classify(&oid("1.3.6.1.2.1.2.2.1.10")),
            Known::Unknown,
            "no index"
        );
        assert_eq!(classify(&oid("1.3.6.1.4.1.2021.10.1.5.1")), Known::Unknown);
        assert_eq!(
            value_name(&oid("1.3.6.1.2.1.25.2.1.4")),
            Some("hrStorageFixedDisk")
        );
        assert_eq!(
            describe(&oid("1.3.6.1.2.1.2.2")),
            "ifTable (1.3.6.1.2.1.2.2)"
        );
        assert_eq!(
            describe(&oid("1.3.6.1.2.1.1.3.0")),
            "sysUpTime.0 (1.3.6.1.2.1.1.3.0)"
        );
        assert_eq!(
            describe(&oid("1.3.6.1.2.1.2.2.1.10.2")),
            "ifInOctets.2 (1.3.6.1.2.1.2.2.1.10.2)"
        );
    }
}
