//! `logops-agent run --stdin`: the lines of the agent's standard input are log events
//! (`source = "stdin"`), cut like files' lines (split, `invalid_utf8`).
//!
//! # At the end of the input
//!
//! `some-app | logops-agent run --stdin` is a pipeline: when `some-app` ends, the
//! pipeline ends. So at EOF the last unterminated line is appended, then the agent stops as
//! on SIGTERM: its other sources stop, and it keeps sending what is buffered for up to
//! `ship.shutdown_timeout`. It exits 0 when everything read was acknowledged by the ingest,
//! and 1 (saying how many events are left) when some is still buffered: those are sent by
//! the next start with the same `data_dir`. A pipeline never hangs on the agent, and its
//! exit status says whether the data arrived.
//!
//! One thread reads stdin for the life of the process and hands blocks over a channel of
//! two; the source (restarted on SIGHUP) takes them, so a reload loses nothing of a line
//! that was half read. When the buffer blocks, the channel fills, the reader stops reading
//! and the writer of the pipe blocks.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::chunk::Chunk;
use crate::metrics::SourceStreamLabels;
use crate::pipeline::{EmitError, Emitter, Shutdown};
use crate::sources::files::reader::READ_SIZE;
use crate::sources::lines::StreamLines;
use crate::sources::merge_labels;

/// `source` of the events.
pub const SOURCE: &str = "stdin";
/// The longest line before it is split.
const MAX_LINE: usize = 64 * 1024;

/// The agent's stdin, read for the life of the process.
pub struct StdinFeed {
    state: Mutex<State>,
    eof: tokio::sync::Notify,
}

struct State {
    rx: Receiver<Vec<u8>>,
    lines: StreamLines,
    /// A chunk not appended when the source stopped (a reload with a full buffer).
    unsent: Option<Chunk>,
    done: bool,
}

impl StdinFeed {
    /// Starts the thread that reads stdin.
    pub fn start() -> std::io::Result<Arc<StdinFeed>> {
        let (tx, rx) = sync_channel::<Vec<u8>>(2);
        std::thread::Builder::new()
            .name("stdin-read".into())
            .spawn(move || {
                let mut stdin = std::io::stdin().lock();
                loop {
                    let mut block = vec![0; READ_SIZE];
                    match stdin.read(&mut block) {
                        Ok(0) => return,
                        Ok(n) => {
                            block.truncate(n);
                            if tx.send(block).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            tracing::error!(error = %e, "stdin: cannot read; taking it as the end of the input");
                            return;
                        }
                    }
                }
            })?;
        Ok(Arc::new(StdinFeed {
            state: Mutex::new(State {
                rx,
                lines: StreamLines::new(MAX_LINE, &serde_json::Map::new()),
                unsent: None,
                done: false,
            }),
            eof: tokio::sync::Notify::new(),
        }))
    }

    /// Resolves once everything up to the end of the input was appended to the buffer.
    pub async fn ended(&self) {
        self.eof.notified().await;
    }

    /// Appends stdin's lines until shutdown or the end of the input; call on a dedicated
    /// thread (it blocks).
    pub fn run(&self, emitter: Emitter, shutdown: Shutdown) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.done {
            return;
        }
        let labels = merge_labels(emitter.agent_labels(), &Default::default());
        let host = emitter.agent_id().clone();
        let counter = emitter
            .metrics()
            .source_lines
            .get_or_create_owned(&SourceStreamLabels {
                source: SOURCE.into(),
                name: SOURCE.into(),
                stream: SOURCE.into(),
            });
        let st = &mut *st;
        loop {
            if let Some(chunk) = st.unsent.take() {
                match emitter.emit_blocking(SOURCE, &chunk, &[], &shutdown) {
                    Ok(()) => {
                        counter.inc_by(u64::from(chunk.events()));
                    }
                    Err(EmitError::ShuttingDown) => {
                        // Kept for the next configuration (reload); lost if the agent stops.
                        st.unsent = Some(chunk);
                        return;
                    }
                    Err(EmitError::Buffer(e)) => {
                        tracing::error!(error = %e, events = chunk.events(), "stdin: cannot append to the buffer: lines lost");
                    }
                }
            }
            if st.done {
                tracing::info!("stdin: end of the input; everything read is in the buffer");
                self.eof.notify_one();
                return;
            }
            if shutdown.is_triggered() {
                return;
            }
            match st.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(block) => {
                    st.lines.spare()[..block.len()].copy_from_slice(&block);
                    st.unsent = Some(st.lines.feed(block.len(), &host, SOURCE, &labels));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    st.unsent = Some(st.lines.finish(&host, SOURCE, &labels));
                    st.done = true;
                }
            }
            if st.unsent.as_ref().is_some_and(Chunk::is_empty) {
                st.unsent = None;
            }
        }
    }
}
