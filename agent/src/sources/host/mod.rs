//! The host metrics source (`[host]`): CPU, memory, filesystems, disk IO, network, load and
//! uptime, sampled every `interval` and emitted as one chunk of metric events per sample.
//!
//! Names are Prometheus style with the unit in the name and mirror node_exporter's where it
//! has one (`host_` for `node_`); counters are counters. Every event of a sample has the same
//! timestamp, `source` `host`, the agent id as `host` and the agent's labels merged with the
//! metric's own.
//!
//! | metric | type | labels | from |
//! |---|---|---|---|
//! | `host_cpu_seconds_total` | counter | `cpu` (`total`, `0`, ...), `mode` (user nice system idle iowait irq softirq steal) | `/proc/stat` ÷ USER_HZ |
//! | `host_cpu_usage_ratio` | gauge | `cpu` | 1 − Δ(idle + iowait) ÷ Δtotal since the previous sample (sysinfo's definition) |
//! | `host_memory_{total,used,available}_bytes`, `host_swap_{total,used}_bytes` | gauge | | sysinfo (`/proc/meminfo`); used = total − available |
//! | `host_filesystem_{size,avail}_bytes` | gauge | `mountpoint`, `device`, `fstype` | sysinfo `Disks` (f_blocks, f_bavail) |
//! | `host_filesystem_{free,used}_bytes`, `host_filesystem_files{,_free}` | gauge | same | `statvfs` (f_bfree; used = size − free; f_files, f_ffree) |
//! | `host_disk_{read,written}_bytes_total`, `host_disk_{reads,writes}_completed_total`, `host_disk_io_time_seconds_total` | counter | `device` | `/proc/diskstats` (sectors × 512) |
//! | `host_network_{receive,transmit}_{bytes,packets,errs,drop}_total` | counter | `device` | `/proc/net/dev` |
//! | `host_load1`, `host_load5`, `host_load15`, `host_uptime_seconds` | gauge | | sysinfo (`/proc/loadavg`, `/proc/uptime`) |
//! | `host_boot_time_seconds` | gauge | | `/proc/stat` `btime` |
//!
//! Left out: filesystems whose type is in `exclude_fs_types` or whose mount point matches an
//! `exclude_mounts` glob (each device + mount point once; sysinfo itself never lists tmpfs,
//! network filesystems, whose `statvfs` can hang, or mounts under `/sys`, `/proc` and `/run`);
//! block devices matching node_exporter's default exclusion (partitions, RAM, loop and floppy
//! devices, [`procfs::NODE_DISK_EXCLUDE`]); interfaces matching an `exclude_interfaces` glob.
//!
//! Anything that cannot be read (a missing file, an odd line, a failing `statvfs`) is logged
//! once with its path and left out of the sample; the source never stops because of it.

pub mod procfs;
mod sample;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use sample::{Exclusions, HostSampler, SOURCE};

use crate::chunk::Chunk;
use crate::config::HostConfig;
use crate::pipeline::{EmitError, Emitter, Shutdown};

/// Samples host metrics every `cfg.interval` until shutdown, emitting one chunk per sample
/// (the first right away). Sampling runs on the blocking pool: it reads files and calls
/// `statvfs`.
pub async fn run(cfg: HostConfig, emitter: Emitter, mut shutdown: Shutdown) {
    // The configuration check requires at least 1s; never spin.
    let interval = cfg.interval.get().max(Duration::from_millis(100));
    let cfg = Arc::new(cfg);
    tracing::info!(interval = ?interval, "host metrics: sampling");
    let mut sampler: Option<HostSampler> = None;
    while !shutdown.is_triggered() {
        let started = Instant::now();
        let taken = sampler.take();
        let make = {
            let cfg = cfg.clone();
            let host = emitter.agent_id().clone();
            let labels = emitter.agent_labels().clone();
            move || HostSampler::new(&cfg).with_identity(host, labels)
        };
        let joined = tokio::task::spawn_blocking(move || {
            let mut s = taken.unwrap_or_else(make);
            let events = s.sample();
            let mut chunk = Chunk::with_capacity(events.len() * 256);
            for e in &events {
                chunk.push(e);
            }
            (s, chunk)
        })
        .await;
        match joined {
            Ok((s, chunk)) => {
                sampler = Some(s);
                if !chunk.is_empty() {
                    match emitter.emit(SOURCE, chunk, vec![], &shutdown).await {
                        Ok(()) => {}
                        Err(EmitError::ShuttingDown) => break,
                        Err(e) => {
                            tracing::error!(error = %e, "host metrics: a sample could not be buffered and is lost")
                        }
                    }
                }
            }
            // A panic in the sampler (a bug): start over with a new one next time.
            Err(e) => tracing::error!(error = %e, "host metrics: sampling failed"),
        }
        if shutdown
            .sleep(interval.saturating_sub(started.elapsed()))
            .await
        {
            break;
        }
    }
    tracing::info!("host metrics: stopped");
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use logops_common::event::Payload;
    use logops_common::units::HumanDuration;

    use super::*;
    use crate::pipeline::testing::TestPipeline;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_emits_one_chunk_per_sample_until_shutdown() {
        let p = TestPipeline::new("agent-7", &[("env", "test")], 64 << 20);
        let (trigger, shutdown) = Shutdown::new();
        let cfg = HostConfig {
            interval: HumanDuration::secs(1),
            ..HostConfig::default()
        };
        let task = tokio::spawn(run(cfg, p.emitter.clone(), shutdown));
        // Two samples: the first right away, the second an interval later.
        p.wait_for_chunks(2, Duration::from_secs(60), "a second sample")
            .await;
        trigger.trigger();
        task.await.unwrap();

        let chunks = p.buffer.stats().unwrap().queued_chunks;
        let text = p.take_all();
        let mut stamps = HashSet::new();
        let mut names = HashSet::new();
        for line in text.lines() {
            let e = logops_common::parse_line(line, 1).unwrap();
            assert_eq!((e.host.as_ref(), e.source.as_ref()), ("agent-7", "host"));
            assert_eq!(e.labels["env"], "test");
            stamps.insert(e.ts);
            if let Payload::Metric { name, .. } = e.payload {
                names.insert(name.into_owned());
            }
        }
        assert_eq!(stamps.len() as u64, chunks, "one timestamp per chunk");
        for n in [
            "host_cpu_seconds_total",
            "host_cpu_usage_ratio",
            "host_memory_total_bytes",
            "host_filesystem_size_bytes",
            "host_load1",
            "host_uptime_seconds",
        ] {
            assert!(names.contains(n), "{n} missing");
        }
    }
}
