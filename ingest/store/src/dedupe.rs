//! The set of stored batch ids, kept as ranges of consecutive sequence numbers per
//! (tenant, agent): agents number their batches 1, 2, 3, ... so a long-lived agent costs a
//! single range.

use std::collections::{BTreeMap, HashMap};

/// A run of stored sequence numbers `start..=end` and when it was last extended (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeqRange {
    /// The first sequence number.
    pub(crate) start: u64,
    /// The last sequence number (inclusive).
    pub(crate) end: u64,
    /// When a sequence number of the range was last stored (Unix ms).
    pub(crate) last_seen_ms: u64,
}

/// A range of one (tenant, agent), as written to the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DedupeEntry {
    /// The tenant.
    pub(crate) tenant: String,
    /// The agent id.
    pub(crate) agent: String,
    /// The range.
    pub(crate) range: SeqRange,
}

/// start -> (end, last seen ms)
type Ranges = BTreeMap<u64, (u64, u64)>;

/// The stored batch ids.
#[derive(Debug, Default)]
pub(crate) struct DedupeSet {
    tenants: HashMap<String, HashMap<String, Ranges>>,
}

impl DedupeSet {
    /// Whether `tenant`'s batch `agent:seq` is stored.
    pub(crate) fn contains(&self, tenant: &str, agent: &str, seq: u64) -> bool {
        self.tenants
            .get(tenant)
            .and_then(|agents| agents.get(agent))
            .and_then(|ranges| ranges.range(..=seq).next_back())
            .is_some_and(|(_, &(end, _))| end >= seq)
    }

    /// Records that `tenant`'s batch `agent:seq` was stored at `seen_ms`.
    pub(crate) fn insert(&mut self, tenant: &str, agent: &str, seq: u64, seen_ms: u64) {
        self.insert_range(
            tenant,
            agent,
            SeqRange {
                start: seq,
                end: seq,
                last_seen_ms: seen_ms,
            },
        );
    }

    /// Records a range, merging it with the ranges it overlaps or touches (idempotent: a
    /// replayed id only refreshes `last_seen_ms` to the later of the two).
    pub(crate) fn insert_range(&mut self, tenant: &str, agent: &str, r: SeqRange) {
        let ranges = match self.tenants.get_mut(tenant) {
            Some(agents) => agents,
            None => self.tenants.entry(tenant.to_string()).or_default(),
        };
        let ranges = match ranges.get_mut(agent) {
            Some(r) => r,
            None => ranges.entry(agent.to_string()).or_default(),
        };
        let (mut start, mut end, mut seen) = (r.start, r.end, r.last_seen_ms);
        if let Some((&s, &(e, t))) = ranges.range(..=start).next_back() {
            if e.saturating_add(1) >= start {
                ranges.remove(&s);
                start = s;
                end = end.max(e);
                seen = seen.max(t);
            }
        }
        while let Some((&s, &(e, t))) = ranges.range(start..).next() {
            if s > end.saturating_add(1) {
                break;
            }
            ranges.remove(&s);
            end = end.max(e);
            seen = seen.max(t);
        }
        ranges.insert(start, (end, seen));
    }

    /// Forgets the ranges last seen before `cutoff_ms`; returns how many it forgot.
    pub(crate) fn expire(&mut self, cutoff_ms: u64) -> usize {
        let mut forgotten = 0;
        self.tenants.retain(|_, agents| {
            agents.retain(|_, ranges| {
                let before = ranges.len();
                ranges.retain(|_, &mut (_, seen)| seen >= cutoff_ms);
                forgotten += before - ranges.len();
                !ranges.is_empty()
            });
            !agents.is_empty()
        });
        forgotten
    }

    /// All ranges, for the snapshot.
    pub(crate) fn entries(&self) -> Vec<DedupeEntry> {
        let mut out = Vec::with_capacity(self.range_count());
        for (tenant, agents) in &self.tenants {
            for (agent, ranges) in agents {
                for (&start, &(end, last_seen_ms)) in ranges {
                    out.push(DedupeEntry {
                        tenant: tenant.clone(),
                        agent: agent.clone(),
                        range: SeqRange {
                            start,
                            end,
                            last_seen_ms,
                        },
                    });
                }
            }
        }
        out
    }

    /// How many ranges the set holds (its memory is proportional to this).
    pub(crate) fn range_count(&self) -> usize {
        self.tenants
            .values()
            .flat_map(|agents| agents.values())
            .map(|ranges| ranges.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_collapse_into_one_range() {
        let mut d = DedupeSet::default();
        for seq in [5, 7, 6, 4, 8] {
            d.insert("t", "a", seq, 100 + seq);
        }
        assert_eq!(d.range_count(), 1);
        assert_eq!(
            d.entries()[0].range,
            SeqRange {
                start: 4,
                end: 8,
                last_seen_ms: 108
            }
        );
        assert!((4..=8).all(|s| d.contains("t", "a", s)));
        assert!(!d.contains("t", "a", 3) && !d.contains("t", "a", 9));
        assert!(!d.contains("t", "b", 5) && !d.contains("u", "a", 5));
    }

    #[test]
    fn gaps_make_separate_ranges_that_merge_when_filled() {
        let mut d = DedupeSet::default();
        d.insert("t", "a", 1, 1);
        d.insert("t", "a", 3, 1);
        d.insert("t", "a", 10, 1);
        assert_eq!(d.range_count(), 3);
        assert!(!d.contains("t", "a", 2));
        d.insert_range(
            "t",
            "a",
            SeqRange {
                start: 2,
                end: 9,
                last_seen_ms: 5,
            },
        );
        assert_eq!(d.range_count(), 1);
        assert!((1..=10).all(|s| d.contains("t", "a", s)));
        // Replaying an id is idempotent.
        d.insert("t", "a", 4, 2);
        assert_eq!(d.entries()[0].range.last_seen_ms, 5);
        d.insert("t", "a", u64::MAX, 1);
        d.insert("t", "a", u64::MAX - 1, 1);
        assert!(d.contains("t", "a", u64::MAX));
        assert_eq!(d.range_count(), 2);
    }

    #[test]
    fn expiry_forgets_ranges_not_touched_within_the_window() {
        let mut d = DedupeSet::default();
        d.insert("t", "old", 1, 100);
        d.insert("t", "a", 1, 100);
        d.insert("t", "a", 5, 200);
        d.insert("t", "a", 2, 300);
        assert_eq!(d.expire(250), 2);
        assert!(!d.contains("t", "old", 1));
        assert!(d.contains("t", "a", 1) && d.contains("t", "a", 2));
        assert!(!d.contains("t", "a", 5));
        assert_eq!(d.range_count(), 1);
    }
}
