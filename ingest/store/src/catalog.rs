//! The in-memory catalog of segments, by stream and by seq.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use logops_common::Kind;

use crate::segment::{SegmentMeta, StreamKey};

/// Every segment of the store. Shared behind a mutex by the writer (commits, rotation), the
/// sealer, retention and scans (which copy what they need and let go).
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    streams: HashMap<Arc<str>, BTreeMap<Kind, BTreeMap<u64, SegmentMeta>>>,
    owners: BTreeMap<u64, StreamKey>,
}

impl Catalog {
    /// Adds (or replaces) a segment.
    pub(crate) fn insert(&mut self, meta: SegmentMeta) {
        self.owners
            .insert(meta.seq, (meta.tenant.clone(), meta.kind));
        self.streams
            .entry(meta.tenant.clone())
            .or_default()
            .entry(meta.kind)
            .or_default()
            .insert(meta.seq, meta);
    }

    /// The segment `seq`.
    pub(crate) fn get(&self, seq: u64) -> Option<&SegmentMeta> {
        let (tenant, kind) = self.owners.get(&seq)?;
        self.streams.get(tenant)?.get(kind)?.get(&seq)
    }

    /// The segment `seq`, to update it.
    pub(crate) fn get_mut(&mut self, seq: u64) -> Option<&mut SegmentMeta> {
        let (tenant, kind) = self.owners.get(&seq)?;
        self.streams.get_mut(tenant)?.get_mut(kind)?.get_mut(&seq)
    }

    /// Removes the segment `seq`.
    pub(crate) fn remove(&mut self, seq: u64) -> Option<SegmentMeta> {
        let (tenant, kind) = self.owners.remove(&seq)?;
        let kinds = self.streams.get_mut(&tenant)?;
        let segments = kinds.get_mut(&kind)?;
        let meta = segments.remove(&seq);
        if segments.is_empty() {
            kinds.remove(&kind);
            if kinds.is_empty() {
                self.streams.remove(&tenant);
            }
        }
        meta
    }

    /// The segments of one stream, by seq.
    pub(crate) fn stream(&self, tenant: &str, kind: Kind) -> Option<&BTreeMap<u64, SegmentMeta>> {
        self.streams.get(tenant)?.get(&kind)
    }

    /// All segments in seq order (oldest first).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &SegmentMeta> + '_ {
        self.owners.keys().filter_map(|&seq| self.get(seq))
    }

    /// The bytes all segments take on disk.
    pub(crate) fn bytes_on_disk(&self) -> u64 {
        self.iter().map(|m| m.bytes_on_disk).sum()
    }

    /// The closed segment with the lowest seq.
    pub(crate) fn oldest_closed(&self) -> Option<u64> {
        self.iter().find(|m| m.closed).map(|m| m.seq)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::segment::LineStats;

    fn meta(seq: u64, tenant: &str, kind: Kind, closed: bool) -> SegmentMeta {
        SegmentMeta {
            seq,
            tenant: tenant.into(),
            kind,
            path: PathBuf::from(format!("{seq}")),
            closed,
            sealed: false,
            bytes_on_disk: 10,
            committed_len: 10,
            ts: LineStats::default(),
            created_ms: 0,
            last_write_ms: 0,
            frames: Default::default(),
            readers: Default::default(),
        }
    }

    #[test]
    fn segments_are_found_by_stream_and_by_seq() {
        let mut c = Catalog::default();
        c.insert(meta(3, "a", Kind::Log, false));
        c.insert(meta(1, "a", Kind::Log, true));
        c.insert(meta(2, "b", Kind::Metric, true));
        assert_eq!(c.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(
            c.stream("a", Kind::Log)
                .unwrap()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(c.bytes_on_disk(), 30);
        assert_eq!(c.oldest_closed(), Some(1));
        c.get_mut(2).unwrap().bytes_on_disk = 5;
        assert_eq!(c.get(2).unwrap().bytes_on_disk, 5);
        assert_eq!(c.remove(1).unwrap().seq, 1);
        assert_eq!(c.oldest_closed(), Some(2));
        c.remove(2);
        assert!(c.stream("b", Kind::Metric).is_none());
        assert_eq!(c.oldest_closed(), None);
    }
}
