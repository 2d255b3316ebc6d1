//! What connects sources to the buffer: the [`Emitter`] (append with back-pressure) and the
//! [`Shutdown`] signal. Sources know nothing else of the core.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::buffer::{Buffer, BufferError};
use crate::chunk::Chunk;
use crate::config::WhenFull;
use crate::metrics::{AgentMetrics, ReasonLabels, SourceLabels};

/// A source position update: key → new position (`None` forgets it).
pub type CheckpointUpdate = (String, Option<Vec<u8>>);

/// Why an emit did not happen. When it fails, the source must not advance its position.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The agent is stopping; the events were not appended.
    #[error("the agent is shutting down")]
    ShuttingDown,
    /// The buffer failed.
    #[error(transparent)]
    Buffer(#[from] BufferError),
}

/// A shutdown signal, cloneable, usable from threads and tasks.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Triggers a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// Whether shutdown was requested. A trigger dropped without being triggered counts as
    /// triggered (whoever could stop us is gone), as it does for [`Shutdown::wait`].
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }

    /// Waits until shutdown is requested (or the trigger is dropped).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }

    /// Sleeps for `d` or until shutdown; true if shutdown was requested.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_triggered(),
            _ = self.wait() => true,
        }
    }
}

impl ShutdownTrigger {
    /// Requests shutdown.
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

/// Appends events to the buffer for sources, applying `[buffer] when_full`.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<EmitterInner>,
}

struct EmitterInner {
    buffer: Buffer,
    max_bytes: u64,
    when_full: WhenFull,
    space: (Mutex<()>, Condvar),
    data: Notify,
    metrics: Arc<AgentMetrics>,
    agent_id: Arc<str>,
    labels: Arc<BTreeMap<String, String>>,
}

impl Emitter {
    /// An emitter over `buffer` holding at most `max_bytes`.
    pub fn new(
        buffer: Buffer,
        max_bytes: u64,
        when_full: WhenFull,
        metrics: Arc<AgentMetrics>,
        agent_id: Arc<str>,
        labels: BTreeMap<String, String>,
    ) -> Self {
        Emitter {
            inner: Arc::new(EmitterInner {
                buffer,
                max_bytes,
                when_full,
                space: (Mutex::new(()), Condvar::new()),
                data: Notify::new(),
                metrics,
                agent_id,
                labels: Arc::new(labels),
            }),
        }
    }

    /// The agent id (`host` of events).
    pub fn agent_id(&self) -> &Arc<str> {
        &self.inner.agent_id
    }

    /// The agent's labels, added to every event.
    pub fn agent_labels(&self) -> &Arc<BTreeMap<String, String>> {
        &self.inner.labels
    }

    /// The agent's metrics.
    pub fn metrics(&self) -> &Arc<AgentMetrics> {
        &self.inner.metrics
    }

    /// The buffer (for the shipper and the CLI).
    pub fn buffer(&self) -> &Buffer {
        &self.inner.buffer
    }

    /// Appends a chunk with the source's new positions in one atomic write, from a thread.
    ///
    /// When the buffer is full: with `block`, waits (the source does not advance) until the
    /// shipper frees room or shutdown is requested; with `drop_oldest`, drops the oldest
    /// queued events (counted) to make room.
    pub fn emit_blocking(
        &self,
        source: &str,
        chunk: &Chunk,
        checkpoints: &[CheckpointUpdate],
        shutdown: &Shutdown,
    ) -> Result<(), EmitError> {
        self.append(source, chunk, checkpoints, Some(shutdown))
            .map(|_appended| ())
    }

    /// Like [`Emitter::emit_blocking`], but never waits: when the buffer is full and
    /// `when_full = "block"`, nothing is appended and it returns `Ok(false)` at once (the
    /// caller counts the chunk's events as dropped). For sources that cannot make their
    /// sender wait, such as UDP syslog. With `drop_oldest` it makes room like
    /// `emit_blocking` and returns `Ok(true)`.
    pub fn try_emit(
        &self,
        source: &str,
        chunk: &Chunk,
        checkpoints: &[CheckpointUpdate],
    ) -> Result<bool, EmitError> {
        self.append(source, chunk, checkpoints, None)
    }

    /// Appends, waiting for room while `shutdown` is given; without it, returns `Ok(false)`
    /// instead of waiting.
    fn append(
        &self,
        source: &str,
        chunk: &Chunk,
        checkpoints: &[CheckpointUpdate],
        shutdown: Option<&Shutdown>,
    ) -> Result<bool, EmitError> {
        let i = &self.inner;
        let need = chunk.len() as u64 + 12;
        if !chunk.is_empty() {
            loop {
                if i.buffer.bytes() + need <= i.max_bytes {
                    break;
                }
                if i.when_full == WhenFull::DropOldest {
                    let (events, _) = i.buffer.drop_oldest(need, i.max_bytes)?;
                    if events > 0 {
                        i.metrics
                            .dropped_events
                            .get_or_create(&ReasonLabels {
                                reason: "buffer_full".into(),
                            })
                            .inc_by(events);
                        tracing::warn!(
                            events,
                            "buffer full: dropped the oldest events (when_full = drop_oldest)"
                        );
                        continue;
                    }
                }
                let Some(shutdown) = shutdown else {
                    return Ok(false);
                };
                if shutdown.is_triggered() {
                    return Err(EmitError::ShuttingDown);
                }
                // Only cut batches fill the buffer, or the policy is `block`: wait for the
                // shipper.
                let guard = i.space.0.lock().unwrap_or_else(|p| p.into_inner());
                let _ = i
                    .space
                    .1
                    .wait_timeout(guard, Duration::from_millis(200))
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        i.buffer.append(chunk, checkpoints)?;
        if !chunk.is_empty() {
            i.metrics
                .events
                .get_or_create(&SourceLabels {
                    source: source.to_owned(),
                })
                .inc_by(u64::from(chunk.events()));
            i.data.notify_one();
        }
        Ok(true)
    }

    /// [`Emitter::emit_blocking`] for async sources (runs on the blocking pool).
    pub async fn emit(
        &self,
        source: &'static str,
        chunk: Chunk,
        checkpoints: Vec<CheckpointUpdate>,
        shutdown: &Shutdown,
    ) -> Result<(), EmitError> {
        let me = self.clone();
        let shutdown = shutdown.clone();
        tokio::task::spawn_blocking(move || {
            me.emit_blocking(source, &chunk, &checkpoints, &shutdown)
        })
        .await
        .unwrap_or(Err(EmitError::ShuttingDown))
    }

    /// A source's saved position.
    pub fn checkpoint(&self, key: &str) -> Result<Option<Vec<u8>>, BufferError> {
        self.inner.buffer.checkpoint(key)
    }

    /// Every saved position whose key starts with `prefix`.
    pub fn checkpoints(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, BufferError> {
        self.inner.buffer.checkpoints(prefix)
    }

    /// Called by the shipper when batches were acknowledged: wakes blocked sources.
    pub fn space_freed(&self) {
        self.inner.space.1.notify_all();
    }

    /// Wakes the shipper to look at the buffer again.
    pub fn wake_shipper(&self) {
        self.inner.data.notify_one();
    }

    /// Moves dead letters (one, or all) back to be sent again by the running shipper
    /// ([`Buffer::replay`]), and wakes it. Returns how many moved.
    pub fn replay(&self, seq: Option<u64>) -> Result<usize, BufferError> {
        let n = self.inner.buffer.replay(seq)?;
        self.space_freed();
        self.wake_shipper();
        Ok(n)
    }

    /// Resolves when a source appended events (or [`Emitter::wake_shipper`] was called)
    /// since the last call (for the shipper; a wake-up while it was busy is kept).
    pub async fn data_arrived(&self) {
        self.inner.data.notified().await;
    }
}

/// A real buffer in a temporary directory and an emitter into it, for the sources' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use logops_common::batch::Encoding;

    use super::Emitter;
    use crate::buffer::{Buffer, BufferOptions};
    use crate::config::WhenFull;
    use crate::metrics::AgentMetrics;

    /// The buffer, an emitter into it and their metrics.
    pub struct TestPipeline {
        /// Holds the buffer's directory for as long as the test runs.
        _dir: tempfile::TempDir,
        /// The buffer.
        pub buffer: Buffer,
        /// Emits as agent `host` with `labels`, blocking beyond `max_bytes` queued.
        pub emitter: Emitter,
    }

    impl TestPipeline {
        /// A new, empty buffer; events get `host` and `labels`.
        pub fn new(host: &str, labels: &[(&str, &str)], max_bytes: u64) -> Self {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let buffer = Buffer::open(
                dir.path(),
                &BufferOptions {
                    cache_bytes: 1 << 20,
                    flush_interval: Duration::from_millis(100),
                    zstd_level: 1,
                },
            )
            .expect("a buffer");
            let labels: BTreeMap<String, String> = labels
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let emitter = Emitter::new(
                buffer.clone(),
                max_bytes,
                WhenFull::Block,
                Arc::new(AgentMetrics::new()),
                Arc::from(host),
                labels,
            );
            TestPipeline {
                _dir: dir,
                buffer,
                emitter,
            }
        }

        /// Waits until the buffer holds `chunks` chunks; panics saying `what` after `within`.
        pub async fn wait_for_chunks(&self, chunks: u64, within: Duration, what: &str) {
            let started = Instant::now();
            while self.buffer.stats().expect("buffer stats").queued_chunks < chunks {
                assert!(started.elapsed() < within, "{what} within {within:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// Everything queued, cut as one batch: its NDJSON text.
        pub fn take_all(&self) -> String {
            let batch = self
                .buffer
                .cut(usize::MAX, usize::MAX, Encoding::Identity, 3)
                .expect("cutting a batch")
                .expect("a batch");
            let body = crate::codec::decode(&batch.body, batch.encoding).expect("decoding");
            String::from_utf8(body).expect("UTF-8")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logops_common::event::{Event, Payload};
    use logops_common::timestamp::Timestamp;
    use std::borrow::Cow;

    fn chunk(n: usize) -> Chunk {
        let mut c = Chunk::new();
        for i in 0..n {
            c.push(&Event {
                ts: Timestamp::now(),
                host: Cow::Borrowed("h"),
                source: Cow::Borrowed("syslog"),
                labels: Default::default(),
                attrs: None,
                payload: Payload::Log {
                    severity: None,
                    body: Cow::Owned(format!("{i} {}", "x".repeat(100))),
                },
            });
        }
        c
    }

    #[test]
    fn try_emit_never_waits_and_says_when_nothing_was_appended() {
        let p = testing::TestPipeline::new("h", &[], 4096);
        let (buffer, emitter) = (&p.buffer, &p.emitter);
        assert!(emitter.try_emit("syslog", &chunk(1), &[]).unwrap());
        let before = buffer.stats().unwrap().queued_events;
        // Far bigger than the room left: refused, nothing appended. (Nothing drains the
        // buffer here: an emit that waited for room would never return.)
        assert!(!emitter.try_emit("syslog", &chunk(1000), &[]).unwrap());
        assert_eq!(buffer.stats().unwrap().queued_events, before);
    }
}
