//! The durable buffer: events, cut batches, source checkpoints, the batch sequence and dead
//! letters, in one sled store under `data_dir/buffer`.
//!
//! The interface is small (append, cut, ack, checkpoint, dead letters) so the engine could
//! change. The rules it keeps:
//! - [`Buffer::append`] writes a chunk of events and the positions of the sources that read
//!   them as one sled value: after a crash both are there or neither is. A position is the
//!   one in the newest chunk that carries it, else the one in `checkpoints`; a cut moves the
//!   positions of the chunks it takes into `checkpoints` in the same transaction.
//! - [`Buffer::cut`] turns the oldest chunks into a batch with the next sequence number,
//!   stores it compressed and flushes to disk before the shipper sends it, so a retry after a
//!   crash resends identical bytes under the same id.
//! - Only [`Buffer::ack`] (a 200) deletes a batch; [`Buffer::dead_letter`] moves one the
//!   ingest refused for good aside with the reason.
//!
//! Values: one per chunk (`chunks`, key = u64 BE, with the positions it carries), one per cut batch (`batch_queue`, key =
//! its [`BatchPos`]: the send order), one per dead letter (`dead`, key = batch sequence BE),
//! checkpoints by source key, and `meta`.
//!
//! Batch ids: every batch gets a sequence number never used before, from one counter that
//! only grows (`meta/next_batch_seq`, starting at the buffer's creation time in ns). The
//! ingest remembers stored ids as ranges of consecutive numbers per agent and answers a
//! known id as a duplicate, so an id must never carry other content, and consecutive ids
//! are what it keeps cheaply. The send order is kept apart from the ids: a batch split after
//! a 413 is replaced by two halves with the next two ids, queued where the batch was (see
//! [`BatchPos`]), so the lines reach the ingest in the order they were read (with
//! `max_in_flight = 1`) even though a half's id is higher than those of batches cut before
//! it. The refused id stays unused: one gap in the ingest's ranges per split.

mod records;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use logops_common::batch::Encoding;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::chunk::Chunk;
use crate::codec;
pub use records::{BatchPos, BatchRecord, ChunkRecord, DeadLetter};

/// Why the buffer failed.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// sled failed (I/O, corruption).
    #[error("buffer {path}: {source}")]
    Sled {
        /// The buffer directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// Another process (a running agent) holds the buffer.
    #[error("buffer {path} is in use by another process (is the agent running? stop it, or ask it on its self_metrics port)")]
    Locked {
        /// The buffer directory.
        path: PathBuf,
    },
    /// A stored value does not decode.
    #[error("buffer {path}: corrupt {what}")]
    Corrupt {
        /// The buffer directory.
        path: PathBuf,
        /// What could not be decoded.
        what: String,
    },
    /// A batch body could not be (de)compressed.
    #[error("buffer {path}: batch {seq}: {source}")]
    Codec {
        /// The buffer directory.
        path: PathBuf,
        /// The batch.
        seq: u64,
        /// The codec error.
        source: std::io::Error,
    },
}

/// Buffer options (from `[buffer]` and `[ship]`).
#[derive(Debug, Clone)]
pub struct BufferOptions {
    /// sled's page cache in bytes.
    pub cache_bytes: u64,
    /// How often sled flushes on its own.
    pub flush_interval: Duration,
    /// zstd level of stored chunks (and so of batches sent with zstd).
    pub zstd_level: i32,
}

/// What is in the buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BufferStats {
    /// Bytes of chunks and batches (values, not sled's files).
    pub bytes: u64,
    /// Events in chunks not yet cut.
    pub queued_events: u64,
    /// Chunks not yet cut.
    pub queued_chunks: u64,
    /// Batches cut and not yet acknowledged.
    pub batches: u64,
    /// Events in those batches.
    pub batch_events: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Unix ms of the oldest chunk or batch, if any.
    pub oldest_ms: Option<u64>,
    /// The next batch sequence number.
    pub next_seq: u64,
    /// Bytes sled uses on disk.
    pub disk_bytes: u64,
}

/// A consistency check's findings.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// Chunks that decoded.
    pub chunks: u64,
    /// Batches whose body decompressed to the recorded number of lines.
    pub batches: u64,
    /// Dead letters that decoded.
    pub dead_letters: u64,
    /// Checkpoints.
    pub checkpoints: u64,
    /// Problems found (empty = consistent).
    pub problems: Vec<String>,
}

/// The buffer. Cheap to clone.
#[derive(Clone)]
pub struct Buffer {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    chunks: sled::Tree,
    /// Cut batches by [`BatchPos`].
    batches: sled::Tree,
    checkpoints: sled::Tree,
    dead: sled::Tree,
    meta: sled::Tree,
    bytes: AtomicU64,
    queued_events: AtomicU64,
    queued_bytes: AtomicU64,
    next_chunk: AtomicU64,
    /// The positions carried by chunks not yet cut: key → (the newest such chunk, its
    /// position; `None` = forgotten). They override `checkpoints`.
    pending_checkpoints: Mutex<PendingCheckpoints>,
    /// The compressor of appended chunks and its output buffer, kept between appends: a
    /// new zstd context and output for every chunk cost CPU and left the allocator's
    /// arenas fragmented by short-lived 256 KiB blocks (peak RSS of a burst).
    compressor: Mutex<ChunkCompressor>,
}

/// A zstd context and the buffer it compresses into.
struct ChunkCompressor {
    level: i32,
    cctx: Option<zstd::bulk::Compressor<'static>>,
    out: Vec<u8>,
}

impl ChunkCompressor {
    /// Compresses `data` into one frame (valid until the next call).
    fn frame(&mut self, data: &[u8]) -> std::io::Result<&[u8]> {
        let cctx = match &mut self.cctx {
            Some(c) => c,
            None => self.cctx.insert(zstd::bulk::Compressor::new(self.level)?),
        };
        self.out.clear();
        self.out
            .reserve(zstd::zstd_safe::compress_bound(data.len()));
        let n = cctx.compress_to_buffer(data, &mut self.out)?;
        Ok(&self.out[..n])
    }
}

/// Positions carried by chunks not yet cut: key → (the newest chunk carrying it, the
/// position; `None` = forgotten).
type PendingCheckpoints = BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>;

/// Positions taken from chunks, in chunk order (a later one replaces an earlier one).
type CheckpointMoves = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

fn apply_moves(
    cps: &sled::transaction::TransactionalTree,
    moves: &CheckpointMoves,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    for (k, v) in moves {
        match v {
            Some(v) => cps.insert(k.as_slice(), v.as_slice())?,
            None => cps.remove(k.as_slice())?,
        };
    }
    Ok(())
}

const NEXT_SEQ: &[u8] = b"next_batch_seq";
/// The send queue's tree.
const QUEUE_TREE: &str = "batch_queue";
/// Where buffers written before the send queue existed keep their batches (key = seq BE,
/// value without the seq); moved to the queue when opened.
const LEGACY_BATCHES_TREE: &str = "batches";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// A queue key for messages: its [`BatchPos`], or hex if it is not one.
fn pos_label(k: &[u8]) -> String {
    match BatchPos::from_key(k) {
        Some(p) => p.to_string(),
        None => k.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn key_u64(k: &[u8]) -> u64 {
    k.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

impl Buffer {
    /// Opens (or creates) the buffer in `dir`.
    pub fn open(dir: &Path, opts: &BufferOptions) -> Result<Buffer, BufferError> {
        let path = dir.to_owned();
        let sled_err = |source: sled::Error| match &source {
            sled::Error::Io(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") =>
            {
                BufferError::Locked { path: path.clone() }
            }
            _ => BufferError::Sled {
                path: path.clone(),
                source,
            },
        };
        std::fs::create_dir_all(dir).map_err(|e| sled_err(sled::Error::Io(e)))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .flush_every_ms(Some(opts.flush_interval.as_millis().max(1) as u64))
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(sled_err)?;
        let tree = |name: &str| db.open_tree(name).map_err(sled_err);
        let inner = Inner {
            chunks: tree("chunks")?,
            batches: tree(QUEUE_TREE)?,
            checkpoints: tree("checkpoints")?,
            dead: tree("dead")?,
            meta: tree("meta")?,
            db,
            path: path.clone(),
            bytes: AtomicU64::new(0),
            queued_events: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            next_chunk: AtomicU64::new(0),
            pending_checkpoints: Mutex::new(BTreeMap::new()),
            compressor: Mutex::new(ChunkCompressor {
                level: opts.zstd_level,
                cctx: None,
                out: Vec::new(),
            }),
        };
        let buffer = Buffer {
            inner: Arc::new(inner),
        };
        buffer.init()?;
        Ok(buffer)
    }

    fn sled(&self, source: sled::Error) -> BufferError {
        BufferError::Sled {
            path: self.inner.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: String) -> BufferError {
        BufferError::Corrupt {
            path: self.inner.path.clone(),
            what,
        }
    }

    fn tx_err(&self, e: TransactionError<BufferError>) -> BufferError {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(s) => self.sled(s),
        }
    }

    /// Moves the batches of a buffer written before the send queue existed into the queue,
    /// each at the position of its own sequence number (their order is kept). One batch per
    /// transaction: a crash midway leaves every batch in exactly one of the two trees, and
    /// the next open moves the rest.
    fn migrate_legacy_batches(&self) -> Result<(), BufferError> {
        let i = &self.inner;
        let names = i.db.tree_names();
        if !names.iter().any(|n| n == LEGACY_BATCHES_TREE.as_bytes()) {
            return Ok(());
        }
        let legacy =
            i.db.open_tree(LEGACY_BATCHES_TREE)
                .map_err(|e| self.sled(e))?;
        let mut moved = 0u64;
        for item in legacy.iter() {
            let (k, v) = item.map_err(|e| self.sled(e))?;
            let seq = key_u64(&k);
            if BatchRecord::decode_keyed(BatchPos::of_seq(seq), seq, &v).is_none() {
                return Err(self.corrupt(format!("batch {seq} (before the send queue)")));
            }
            let queued = BatchRecord::queued_from_keyed(seq, &v);
            (&legacy, &i.batches)
                .transaction(|(old, queue)| {
                    old.remove(&k)?;
                    queue.insert(BatchPos::of_seq(seq).as_bytes(), queued.as_slice())?;
                    Ok::<_, ConflictableTransactionError<BufferError>>(())
                })
                .map_err(|e| self.tx_err(e))?;
            moved += 1;
        }
        i.db.flush().map_err(|e| self.sled(e))?;
        i.db.drop_tree(LEGACY_BATCHES_TREE)
            .map_err(|e| self.sled(e))?;
        if moved > 0 {
            tracing::info!(
                batches = moved,
                "buffer: moved the cut batches into the send queue"
            );
        }
        Ok(())
    }

    /// Recomputes the counters and makes sure the batch sequence exists.
    fn init(&self) -> Result<(), BufferError> {
        self.migrate_legacy_batches()?;
        let i = &self.inner;
        let (mut bytes, mut events, mut queued) = (0u64, 0u64, 0u64);
        let mut last_chunk = None;
        let mut pending = self.pending_cps();
        for item in i.chunks.iter() {
            let (k, v) = item.map_err(|e| self.sled(e))?;
            let rec = ChunkRecord::decode(&v)
                .ok_or_else(|| self.corrupt(format!("chunk {}", key_u64(&k))))?;
            for (cp, value) in &rec.checkpoints {
                pending.insert(cp.to_vec(), (key_u64(&k), value.map(<[u8]>::to_vec)));
            }
            bytes += v.len() as u64;
            queued += u64::from(rec.raw_len);
            events += u64::from(rec.events);
            last_chunk = Some(key_u64(&k));
        }
        for item in i.batches.iter() {
            let (_, v) = item.map_err(|e| self.sled(e))?;
            bytes += v.len() as u64;
        }
        i.bytes.store(bytes, Ordering::Relaxed);
        i.queued_events.store(events, Ordering::Relaxed);
        i.queued_bytes.store(queued, Ordering::Relaxed);
        drop(pending);
        i.next_chunk
            .store(last_chunk.map_or(0, |k| k + 1), Ordering::Relaxed);
        if i.meta.get(NEXT_SEQ).map_err(|e| self.sled(e))?.is_none() {
            // Batch ids must never repeat, even if the data directory is wiped and the agent
            // id reused: start the sequence at the creation time in nanoseconds.
            let start = jiff::Timestamp::now().as_nanosecond().max(1) as u64;
            i.meta
                .insert(NEXT_SEQ, &key(start))
                .map_err(|e| self.sled(e))?;
            i.db.flush().map_err(|e| self.sled(e))?;
        }
        Ok(())
    }

    /// Bytes held (chunks + batches).
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Events waiting to be cut into batches.
    pub fn queued_events(&self) -> u64 {
        self.inner.queued_events.load(Ordering::Relaxed)
    }

    /// NDJSON bytes of events waiting to be cut into batches.
    pub fn queued_bytes(&self) -> u64 {
        self.inner.queued_bytes.load(Ordering::Relaxed)
    }

    /// The positions carried by chunks not yet cut.
    fn pending_cps(&self) -> MutexGuard<'_, PendingCheckpoints> {
        self.inner
            .pending_checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the pending positions of chunks up to `last` (moved to `checkpoints` or
    /// dropped with them).
    fn settle_pending(&self, last: u64) {
        self.pending_cps().retain(|_, (chunk, _)| *chunk > last);
    }

    /// Appends a chunk and the sources' new positions in one atomic write (one sled value).
    /// `checkpoints` maps a source key to its new position (`None` removes it). An empty
    /// chunk only moves the positions.
    pub fn append(
        &self,
        chunk: &Chunk,
        checkpoints: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), BufferError> {
        let i = &self.inner;
        if chunk.is_empty() && checkpoints.is_empty() {
            return Ok(());
        }
        let encode = |frame: &[u8]| {
            ChunkRecord::encode(
                now_ms(),
                chunk.events(),
                chunk.len() as u32,
                checkpoints,
                frame,
            )
        };
        let value = if chunk.is_empty() {
            encode(&[])
        } else {
            let mut c = i.compressor.lock().unwrap_or_else(|p| p.into_inner());
            encode(c.frame(chunk.data()).map_err(|source| BufferError::Codec {
                path: i.path.clone(),
                seq: 0,
                source,
            })?)
        };
        let len = value.len() as u64;
        // Under the lock of the pending positions: chunks are inserted in the order of their
        // keys (so a cut that takes a chunk has seen every one before it), and a position is
        // pending exactly while its chunk is.
        let mut pending = self.pending_cps();
        let n = i.next_chunk.fetch_add(1, Ordering::Relaxed);
        i.chunks.insert(key(n), value).map_err(|e| self.sled(e))?;
        for (k, v) in checkpoints {
            pending.insert(k.as_bytes().to_vec(), (n, v.clone()));
        }
        drop(pending);
        i.bytes.fetch_add(len, Ordering::Relaxed);
        i.queued_events
            .fetch_add(u64::from(chunk.events()), Ordering::Relaxed);
        i.queued_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// A source's saved position.
    pub fn checkpoint(&self, key: &str) -> Result<Option<Vec<u8>>, BufferError> {
        if let Some((_, v)) = self.pending_cps().get(key.as_bytes()) {
            return Ok(v.clone());
        }
        Ok(self
            .inner
            .checkpoints
            .get(key.as_bytes())
            .map_err(|e| self.sled(e))?
            .map(|v| v.to_vec()))
    }

    /// Every saved position whose key starts with `prefix`.
    pub fn checkpoints(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, BufferError> {
        // Read under the lock: a cut moving positions meanwhile is seen before or after.
        let pending = self.pending_cps();
        let mut all: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for item in self.inner.checkpoints.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item.map_err(|e| self.sled(e))?;
            all.insert(k.to_vec(), v.to_vec());
        }
        for (k, (_, v)) in pending.range(prefix.as_bytes().to_vec()..) {
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            match v {
                Some(v) => all.insert(k.clone(), v.clone()),
                None => all.remove(k),
            };
        }
        Ok(all
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }

    /// Unix ms of the oldest chunk with events not yet cut.
    pub fn oldest_chunk_ms(&self) -> Result<Option<u64>, BufferError> {
        for item in self.inner.chunks.iter() {
            let (_, v) = item.map_err(|e| self.sled(e))?;
            match ChunkRecord::decode(&v) {
                Some(r) if r.events == 0 => continue,
                r => return Ok(r.map(|r| r.appended_ms)),
            }
        }
        Ok(None)
    }

    /// Cuts the oldest chunks (at least one, then while within `max_events` and `max_bytes`)
    /// into a batch with the next sequence number, compresses it, stores it (moving the
    /// positions the chunks carry into `checkpoints`) and flushes the store to disk. `None`
    /// when there is nothing to cut (chunks holding only positions are settled then).
    pub fn cut(
        &self,
        max_events: usize,
        max_bytes: usize,
        encoding: Encoding,
        zstd_level: i32,
    ) -> Result<Option<BatchRecord>, BufferError> {
        let i = &self.inner;
        let mut keys = Vec::new();
        let mut frames = Vec::new();
        let mut raw = Vec::new();
        let mut raw_len = 0usize;
        let mut events = 0u64;
        let mut oldest = u64::MAX;
        let mut freed = 0u64;
        let mut moves = CheckpointMoves::new();
        let codec_err = |source| BufferError::Codec {
            path: i.path.clone(),
            seq: 0,
            source,
        };
        for item in i.chunks.iter() {
            let (k, v) = item.map_err(|e| self.sled(e))?;
            let rec = ChunkRecord::decode(&v)
                .ok_or_else(|| self.corrupt(format!("chunk {}", key_u64(&k))))?;
            let fits = events + u64::from(rec.events) <= max_events as u64
                && raw_len + rec.raw_len as usize <= max_bytes;
            if events > 0 && !fits {
                break;
            }
            // A zstd body is the chunks' frames one after the other; other encodings need
            // the lines.
            if rec.events > 0 {
                if encoding == Encoding::Zstd {
                    frames.extend_from_slice(rec.frame);
                } else {
                    raw.extend_from_slice(&rec.data().map_err(codec_err)?);
                }
                oldest = oldest.min(rec.appended_ms);
            }
            raw_len += rec.raw_len as usize;
            events += u64::from(rec.events);
            for (cp, value) in &rec.checkpoints {
                moves.insert(cp.to_vec(), value.map(<[u8]>::to_vec));
            }
            freed += v.len() as u64;
            keys.push(k);
        }
        let Some(last) = keys.last().map(|k| key_u64(k)) else {
            return Ok(None);
        };
        let body = if events == 0 {
            Vec::new()
        } else if encoding == Encoding::Zstd {
            frames
        } else {
            codec::encode(&raw, encoding, zstd_level).map_err(codec_err)?
        };
        let record = (&i.chunks, &i.batches, &i.meta, &i.checkpoints)
            .transaction(|(chunks, batches, meta, cps)| {
                for k in &keys {
                    chunks.remove(k)?;
                }
                apply_moves(cps, &moves)?;
                if events == 0 {
                    return Ok(None);
                }
                let seq = meta.get(NEXT_SEQ)?.map_or(1, |v| key_u64(&v));
                meta.insert(NEXT_SEQ, &key(seq + 1))?;
                let rec = BatchRecord {
                    pos: BatchPos::of_seq(seq),
                    seq,
                    created_ms: oldest,
                    events: events as u32,
                    encoding,
                    body: body.clone(),
                };
                batches.insert(rec.pos.as_bytes(), rec.encode())?;
                Ok::<_, ConflictableTransactionError<BufferError>>(Some(rec))
            })
            .map_err(|e| self.tx_err(e))?;
        self.settle_pending(last);
        if record.is_some() {
            i.db.flush().map_err(|e| self.sled(e))?;
        }
        let stored = record.as_ref().map_or(0, |r| r.encoded_len() as u64);
        i.bytes.fetch_add(stored, Ordering::Relaxed);
        i.bytes.fetch_sub(
            freed.min(i.bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        i.queued_events.fetch_sub(
            events.min(i.queued_events.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        i.queued_bytes.fetch_sub(
            (raw_len as u64).min(i.queued_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(record)
    }

    fn decode_batch(&self, k: &[u8], v: &[u8]) -> Result<BatchRecord, BufferError> {
        BatchPos::from_key(k)
            .and_then(|pos| BatchRecord::decode(pos, v))
            .ok_or_else(|| self.corrupt(format!("batch at {}", pos_label(k))))
    }

    /// Every batch cut and not yet acknowledged, in send order.
    pub fn pending(&self) -> Result<Vec<BatchRecord>, BufferError> {
        self.inner
            .batches
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(|e| self.sled(e))?;
                self.decode_batch(&k, &v)
            })
            .collect()
    }

    /// The positions of the batches cut and not yet acknowledged, in send order (keys only:
    /// cheap).
    pub fn pending_positions(&self) -> Result<Vec<BatchPos>, BufferError> {
        self.inner
            .batches
            .iter()
            .keys()
            .map(|k| {
                let k = k.map_err(|e| self.sled(e))?;
                BatchPos::from_key(&k).ok_or_else(|| self.corrupt("a batch key".into()))
            })
            .collect()
    }

    /// One stored batch.
    pub fn batch(&self, pos: &BatchPos) -> Result<Option<BatchRecord>, BufferError> {
        match self
            .inner
            .batches
            .get(pos.as_bytes())
            .map_err(|e| self.sled(e))?
        {
            None => Ok(None),
            Some(v) => self.decode_batch(pos.as_bytes(), &v).map(Some),
        }
    }

    /// Deletes an acknowledged batch.
    pub fn ack(&self, pos: &BatchPos) -> Result<(), BufferError> {
        if let Some(v) = self
            .inner
            .batches
            .remove(pos.as_bytes())
            .map_err(|e| self.sled(e))?
        {
            self.inner
                .bytes
                .fetch_sub((v.len() as u64).min(self.bytes()), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Replaces a batch the ingest found too large (413) by its two halves, in one write:
    /// they take its place in the send queue ([`BatchPos::half`]) and the next two sequence
    /// numbers (ids never used before: the refused id is not reused, as the ingest could
    /// hold it). `None` if it holds a single event (it cannot be split).
    pub fn split(
        &self,
        pos: &BatchPos,
        zstd_level: i32,
    ) -> Result<Option<(BatchRecord, BatchRecord)>, BufferError> {
        let i = &self.inner;
        let Some(v) = i.batches.get(pos.as_bytes()).map_err(|e| self.sled(e))? else {
            return Ok(None);
        };
        let rec = self.decode_batch(pos.as_bytes(), &v)?;
        let seq = rec.seq;
        let data = codec::decode(&rec.body, rec.encoding).map_err(|source| BufferError::Codec {
            path: i.path.clone(),
            seq,
            source,
        })?;
        let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
        if lines.len() < 2 {
            return Ok(None);
        }
        let mid = lines.len() / 2;
        let enc = |part: &[&[u8]]| codec::encode(&part.concat(), rec.encoding, zstd_level);
        let codec_err = |source| BufferError::Codec {
            path: i.path.clone(),
            seq,
            source,
        };
        let (a, b) = (
            enc(&lines[..mid]).map_err(codec_err)?,
            enc(&lines[mid..]).map_err(codec_err)?,
        );
        let halves = (&i.batches, &i.meta)
            .transaction(|(batches, meta)| {
                let next = meta.get(NEXT_SEQ)?.map_or(1, |v| key_u64(&v));
                meta.insert(NEXT_SEQ, &key(next + 2))?;
                batches.remove(pos.as_bytes())?;
                let first = BatchRecord {
                    pos: pos.half(0),
                    seq: next,
                    created_ms: rec.created_ms,
                    events: mid as u32,
                    encoding: rec.encoding,
                    body: a.clone(),
                };
                let second = BatchRecord {
                    pos: pos.half(1),
                    seq: next + 1,
                    created_ms: rec.created_ms,
                    events: (lines.len() - mid) as u32,
                    encoding: rec.encoding,
                    body: b.clone(),
                };
                batches.insert(first.pos.as_bytes(), first.encode())?;
                batches.insert(second.pos.as_bytes(), second.encode())?;
                Ok::<_, ConflictableTransactionError<BufferError>>((first, second))
            })
            .map_err(|e| self.tx_err(e))?;
        i.db.flush().map_err(|e| self.sled(e))?;
        let added = (halves.0.encoded_len() + halves.1.encoded_len()) as u64;
        i.bytes.fetch_add(added, Ordering::Relaxed);
        i.bytes
            .fetch_sub((v.len() as u64).min(self.bytes()), Ordering::Relaxed);
        Ok(Some(halves))
    }

    /// Moves a batch the ingest refused for good to the dead letters (under its sequence
    /// number), with the reason.
    pub fn dead_letter(
        &self,
        pos: &BatchPos,
        status: u16,
        reason: &str,
    ) -> Result<(), BufferError> {
        let i = &self.inner;
        let moved = (&i.batches, &i.dead)
            .transaction(|(batches, dead)| {
                let Some(v) = batches.remove(pos.as_bytes())? else {
                    return Ok(None);
                };
                let Some((seq, _, _)) = BatchRecord::header(&v) else {
                    return Ok(None);
                };
                let letter =
                    DeadLetter::encode(now_ms(), status, reason, BatchRecord::keyed_part(&v));
                dead.insert(&key(seq), letter)?;
                Ok::<_, ConflictableTransactionError<BufferError>>(Some(v.len()))
            })
            .map_err(|e| self.tx_err(e))?;
        if let Some(len) = moved {
            i.bytes
                .fetch_sub((len as u64).min(self.bytes()), Ordering::Relaxed);
        }
        i.db.flush().map_err(|e| self.sled(e))?;
        Ok(())
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, BufferError> {
        self.inner
            .dead
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(|e| self.sled(e))?;
                DeadLetter::decode(key_u64(&k), &v)
                    .ok_or_else(|| self.corrupt(format!("dead letter {}", key_u64(&k))))
            })
            .collect()
    }

    /// Moves dead letters (one, or all) back to the batches to be sent again, under their
    /// own ids (the ingest never stored them), queued at the position of their id. Returns
    /// how many moved.
    pub fn replay(&self, seq: Option<u64>) -> Result<usize, BufferError> {
        let letters = self.dead_letters()?;
        let mut moved = 0;
        for letter in letters
            .into_iter()
            .filter(|l| seq.is_none_or(|s| s == l.seq))
        {
            let i = &self.inner;
            let batch = BatchRecord::queued_from_keyed(letter.seq, &letter.batch);
            let pos = BatchPos::of_seq(letter.seq);
            (&i.batches, &i.dead)
                .transaction(|(batches, dead)| {
                    dead.remove(&key(letter.seq))?;
                    batches.insert(pos.as_bytes(), batch.as_slice())?;
                    Ok::<_, ConflictableTransactionError<BufferError>>(())
                })
                .map_err(|e| self.tx_err(e))?;
            i.bytes.fetch_add(batch.len() as u64, Ordering::Relaxed);
            moved += 1;
        }
        self.inner.db.flush().map_err(|e| self.sled(e))?;
        Ok(moved)
    }

    /// Drops the oldest chunks (never cut batches) until `need` bytes are free under
    /// `max_bytes`; returns (events, bytes) dropped. The positions a dropped chunk carries
    /// are kept (moved into `checkpoints`): its events are lost, not read again.
    pub fn drop_oldest(&self, need: u64, max_bytes: u64) -> Result<(u64, u64), BufferError> {
        let i = &self.inner;
        let (mut events, mut bytes) = (0u64, 0u64);
        while self.bytes() + need > max_bytes {
            let Some((k, v)) = i.chunks.first().map_err(|e| self.sled(e))? else {
                break;
            };
            let rec = ChunkRecord::decode(&v)
                .ok_or_else(|| self.corrupt(format!("chunk {}", key_u64(&k))))?;
            let moves: CheckpointMoves = rec
                .checkpoints
                .iter()
                .map(|(cp, value)| (cp.to_vec(), value.map(<[u8]>::to_vec)))
                .collect();
            // A cut may have taken it meanwhile (and moved its positions itself).
            let removed = (&i.chunks, &i.checkpoints)
                .transaction(|(chunks, cps)| {
                    if chunks.remove(&k)?.is_none() {
                        return Ok(false);
                    }
                    apply_moves(cps, &moves)?;
                    Ok::<_, ConflictableTransactionError<BufferError>>(true)
                })
                .map_err(|e| self.tx_err(e))?;
            if !removed {
                continue;
            }
            self.settle_pending(key_u64(&k));
            let n = u64::from(rec.events);
            events += n;
            i.queued_bytes.fetch_sub(
                u64::from(rec.raw_len).min(self.queued_bytes()),
                Ordering::Relaxed,
            );
            bytes += v.len() as u64;
            i.bytes
                .fetch_sub((v.len() as u64).min(self.bytes()), Ordering::Relaxed);
            i.queued_events
                .fetch_sub(n.min(self.queued_events()), Ordering::Relaxed);
        }
        Ok((events, bytes))
    }

    /// Forces everything written so far to disk.
    pub fn flush(&self) -> Result<(), BufferError> {
        self.inner.db.flush().map(|_| ()).map_err(|e| self.sled(e))
    }

    /// What is in the buffer.
    pub fn stats(&self) -> Result<BufferStats, BufferError> {
        let i = &self.inner;
        let mut s = BufferStats {
            bytes: self.bytes(),
            queued_events: self.queued_events(),
            queued_chunks: i.chunks.len() as u64,
            dead_letters: i.dead.len() as u64,
            next_seq: i
                .meta
                .get(NEXT_SEQ)
                .map_err(|e| self.sled(e))?
                .map_or(0, |v| key_u64(&v)),
            disk_bytes: i.db.size_on_disk().map_err(|e| self.sled(e))?,
            ..BufferStats::default()
        };
        // Headers only: counting must not copy every batch body.
        for item in i.batches.iter() {
            let (k, v) = item.map_err(|e| self.sled(e))?;
            let (_, created, events) = BatchRecord::header(&v)
                .ok_or_else(|| self.corrupt(format!("batch at {}", pos_label(&k))))?;
            s.batches += 1;
            s.batch_events += u64::from(events);
            s.oldest_ms = Some(s.oldest_ms.map_or(created, |o: u64| o.min(created)));
        }
        if let Some(ms) = self.oldest_chunk_ms()? {
            s.oldest_ms = Some(s.oldest_ms.map_or(ms, |o| o.min(ms)));
        }
        Ok(s)
    }

    /// Decodes everything and checks it adds up.
    pub fn check(&self) -> Result<CheckReport, BufferError> {
        let i = &self.inner;
        let mut r = CheckReport::default();
        for item in i.chunks.iter() {
            let (k, v) = item.map_err(|e| self.sled(e))?;
            let lines = ChunkRecord::decode(&v).map(|rec| {
                let data = rec.data();
                (
                    rec.events,
                    data.map(|d| d.iter().filter(|&&b| b == b'\n').count()),
                )
            });
            match lines {
                Some((events, Ok(n))) if n == events as usize => r.chunks += 1,
                Some((events, Ok(n))) => r.problems.push(format!(
                    "chunk {}: {events} events recorded, {n} lines stored",
                    key_u64(&k)
                )),
                Some((_, Err(e))) => r
                    .problems
                    .push(format!("chunk {}: does not decompress: {e}", key_u64(&k))),
                None => r
                    .problems
                    .push(format!("chunk {}: does not decode", key_u64(&k))),
            }
        }
        let next = i
            .meta
            .get(NEXT_SEQ)
            .map_err(|e| self.sled(e))?
            .map_or(0, |v| key_u64(&v));
        for item in i.batches.iter() {
            let (k, v) = item.map_err(|e| self.sled(e))?;
            let decoded = BatchPos::from_key(&k).and_then(|pos| BatchRecord::decode(pos, &v));
            let seq = decoded.as_ref().map_or(0, |b| b.seq);
            match decoded {
                None => r
                    .problems
                    .push(format!("batch at {}: does not decode", pos_label(&k))),
                Some(b) => match codec::decode(&b.body, b.encoding) {
                    Err(e) => r
                        .problems
                        .push(format!("batch {seq}: body does not decompress: {e}")),
                    Ok(d) if d.iter().filter(|&&c| c == b'\n').count() != b.events as usize => {
                        r.problems.push(format!(
                            "batch {seq}: {} events recorded, {} lines stored",
                            b.events,
                            d.iter().filter(|&&c| c == b'\n').count()
                        ))
                    }
                    Ok(_) if seq >= next => r.problems.push(format!(
                        "batch {seq}: not below the next sequence number {next}"
                    )),
                    Ok(_) => r.batches += 1,
                },
            }
        }
        for item in i.dead.iter() {
            let (k, v) = item.map_err(|e| self.sled(e))?;
            match DeadLetter::decode(key_u64(&k), &v) {
                Some(_) => r.dead_letters += 1,
                None => r
                    .problems
                    .push(format!("dead letter {}: does not decode", key_u64(&k))),
            }
        }
        r.checkpoints = self.checkpoints("")?.len() as u64;
        Ok(r)
    }
}

#[cfg(test)]
mod tests;
