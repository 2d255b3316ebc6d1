//! Sources: each turns one part of the outside world into events and hands them, with its
//! position where it has one, to the [`Emitter`](crate::pipeline::Emitter). A source knows
//! nothing of the buffer's engine, batches or HTTP; adding one is a new module here and a
//! config section.

use std::borrow::Cow;
use std::collections::BTreeMap;

use logops_common::event::Labels;

/// The agent's labels merged with a source's own (the source's win).
pub fn merge_labels(
    agent: &BTreeMap<String, String>,
    own: &BTreeMap<String, String>,
) -> Labels<'static> {
    agent
        .iter()
        .chain(own.iter())
        .map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.clone())))
        .collect()
}
