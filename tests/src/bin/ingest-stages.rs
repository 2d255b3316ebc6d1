//! `ingest-stages`: the CPU cost per event of each stage of the ingest's write path,
//! measured alone on one thread, with the ingest's own code where it has it.
//!
//! The same bodies as `ingest-load` (pre-compressed zstd batches of ~200-byte events, one
//! frame each, as agents send them) go through, one stage at a time over all batches:
//!
//! 1. `decompress`: `logops_ingest::batch::decompress` (zstd);
//! 2. `validate`: `logops_ingest::batch::validate` (UTF-8, every line parsed as an event);
//! 3. `frames`: `logops_ingest::batch::to_frames`, which keeps each body's frame as it is
//!    (it holds exactly the validated lines);
//! 4. `write+fdatasync`: those frames appended to a file, 4 batches per `fdatasync` (a
//!    typical group at half load; the store's bookkeeping not included);
//! 5. `compress`: zstd level 1 in 1 MiB frames with a checksum: what the ingest does instead
//!    of 3 to lines that do not come in a frame it can keep (gzip or identity bodies, frames
//!    mixing kinds), and what the store did to every closed segment before segments were
//!    made of the agents' frames.
//!
//! Stages 1 and 4 are work any ingest that validates, acknowledges after fsync and keeps
//! zstd segments must do; their sum bounds the events per CPU-second from above. Figures:
//! thread CPU time (user + system, `CLOCK_THREAD_CPUTIME_ID`) and, where `perf_event_open`
//! is allowed, retired instructions (user + kernel) per event.
//!
//! ```text
//! cargo build --release -p logops-e2e && target/release/ingest-stages [--batches 400]
//!     [--events-per-batch 1000] [--line-bytes 200] [--dir DIR] [--rounds 3]
//! ```

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use anyhow::{bail, Context};
use logops_common::batch::Encoding;
use logops_e2e::pool::make_pool;
use logops_ingest::batch::{decompress, to_frames, validate};

const USAGE: &str = "usage: ingest-stages [--batches N] [--events-per-batch N] [--line-bytes N] \
[--dir DIR] [--rounds N]";

/// Batches per fdatasync in the write stage.
const GROUP: usize = 4;

fn main() {
    if let Err(e) = run() {
        eprintln!("ingest-stages: {e:#}");
        std::process::exit(1);
    }
}

/// This thread's CPU time in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// A counter of this thread's retired instructions (user and kernel), if the kernel lets
/// us open one.
struct Instructions(Option<i32>);

impl Instructions {
    fn open() -> Self {
        // struct perf_event_attr, as far as needed: type, size, config, then the flag bits
        // (disabled = bit 0 is left clear: counting starts at once).
        let mut attr = [0u64; 16];
        attr[0] = 128u64 << 32; // type PERF_TYPE_HARDWARE (0), size 128
        attr[1] = 1; // PERF_COUNT_HW_INSTRUCTIONS
                     // SAFETY: perf_event_open reads `attr` (128 bytes) and returns a descriptor or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                attr.as_ptr(),
                0,  // this thread
                -1, // any CPU
                -1, // no group
                0,
            )
        };
        Instructions((fd >= 0).then_some(fd as i32))
    }

    fn read(&self) -> Option<u64> {
        let fd = self.0?;
        let mut value = 0u64;
        // SAFETY: reading 8 bytes into a u64 from a perf event descriptor.
        let n = unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
        (n == 8).then_some(value)
    }
}

/// Which sums a stage counts in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Work any ingest must do.
    Mandatory,
    /// The ingest's own work on agents' bodies.
    Own,
    /// Only for lines whose frames cannot be kept.
    Rebuild,
}

struct Stage {
    name: &'static str,
    cpu_ns: f64,
    instructions: Option<f64>,
    role: Role,
}

/// Runs `f` and returns its cost per event.
fn measure(
    name: &'static str,
    role: Role,
    events: usize,
    counter: &Instructions,
    f: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Stage> {
    let (i0, t0) = (counter.read(), thread_cpu());
    f()?;
    let (t1, i1) = (thread_cpu(), counter.read());
    Ok(Stage {
        name,
        cpu_ns: (t1 - t0) * 1e9 / events as f64,
        instructions: i0.zip(i1).map(|(a, b)| (b - a) as f64 / events as f64),
        role,
    })
}

fn run() -> anyhow::Result<()> {
    let (mut batches, mut per_batch, mut line_bytes, mut rounds) = (400usize, 1000usize, 200, 3);
    let mut dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = || -> anyhow::Result<usize> {
            value
                .parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .with_context(|| format!("{flag} {value}: not a positive number"))
        };
        match flag.as_str() {
            "--batches" => batches = num()?,
            "--events-per-batch" => per_batch = num()?,
            "--line-bytes" => line_bytes = num()?,
            "--rounds" => rounds = num()?,
            "--dir" => dir = Some(value.into()),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    let pool = make_pool(batches, per_batch, line_bytes);
    let events = batches * per_batch;
    let raw: usize = pool.iter().map(|b| b.raw).sum();
    println!(
        "{batches} batches of {per_batch} events, {:.1} MiB raw; best of {rounds} rounds, one thread",
        raw as f64 / 1048576.0
    );
    let dir = match dir {
        Some(d) => d,
        None => logops_e2e::process::target_dir(),
    };
    let tmp =
        tempfile::tempdir_in(&dir).with_context(|| format!("a directory in {}", dir.display()))?;
    let counter = Instructions::open();

    let mut best: Vec<Stage> = Vec::new();
    for _ in 0..rounds {
        let mut bodies = Vec::with_capacity(pool.len());
        let mut stages = vec![measure(
            "decompress (zstd)",
            Role::Mandatory,
            events,
            &counter,
            || {
                for b in pool.iter() {
                    bodies.push(decompress(b.data, Encoding::Zstd, 64 << 20)?);
                }
                Ok(())
            },
        )?];
        let mut lines = Vec::with_capacity(pool.len());
        stages.push(measure(
            "validate (parse every line)",
            Role::Own,
            events,
            &counter,
            || {
                for body in &bodies {
                    lines.push(validate(body)?);
                }
                Ok(())
            },
        )?);
        let mut frames = Vec::with_capacity(pool.len());
        stages.push(measure(
            "frames (keep the body's frame)",
            Role::Own,
            events,
            &counter,
            || {
                for ((b, body), lines) in pool.iter().zip(&bodies).zip(&lines) {
                    let raw = b.data.into();
                    frames.push(to_frames(&raw, Encoding::Zstd, body, lines, 1)?.frames);
                }
                Ok(())
            },
        )?);
        let kept = frames
            .iter()
            .zip(pool.iter())
            .filter(|(f, b)| f.len() == 1 && f[0].data == b.data)
            .count();
        if kept != pool.len() {
            bail!("only {kept} of {} bodies were kept as sent", pool.len());
        }
        let path = tmp.path().join("segment");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        stages.push(measure(
            "write + fdatasync (4 batches per sync)",
            Role::Mandatory,
            events,
            &counter,
            || {
                let mut at = 0u64;
                for group in frames.chunks(GROUP) {
                    for frame in group.iter().flatten() {
                        file.write_all_at(&frame.data, at)?;
                        at += frame.data.len() as u64;
                    }
                    file.sync_data()?;
                }
                Ok(())
            },
        )?);
        drop(file);
        std::fs::remove_file(&path)?;
        stages.push(measure(
            "compress (zstd 1, 1 MiB frames)",
            Role::Rebuild,
            events,
            &counter,
            || {
                let mut z = zstd::bulk::Compressor::new(1)?;
                z.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                let all: Vec<u8> = bodies.concat();
                for frame in all.chunks(1 << 20) {
                    std::hint::black_box(z.compress(frame)?);
                }
                Ok(())
            },
        )?);
        if best.is_empty() {
            best = stages;
        } else {
            for (b, s) in best.iter_mut().zip(stages) {
                if s.cpu_ns < b.cpu_ns {
                    b.cpu_ns = s.cpu_ns;
                }
                b.instructions = match (b.instructions, s.instructions) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
            }
        }
    }

    println!(
        "{:<42} {:>10} {:>14}",
        "stage", "CPU ns/ev", "instructions/ev"
    );
    let fmt_i = |i: Option<f64>| i.map_or("n/a".to_owned(), |i| format!("{i:.0}"));
    for s in &best {
        println!(
            "{:<42} {:>10.0} {:>14}{}",
            s.name,
            s.cpu_ns,
            fmt_i(s.instructions),
            match s.role {
                Role::Mandatory => "",
                Role::Own => "  (ingest's own)",
                Role::Rebuild => "  (only for lines not in a frame it can keep)",
            }
        );
    }
    let sum = |pick: &dyn Fn(&Stage) -> bool| -> (f64, Option<f64>) {
        let chosen: Vec<&Stage> = best.iter().filter(|s| pick(s)).collect();
        let ns = chosen.iter().map(|s| s.cpu_ns).sum();
        let ins = chosen.iter().map(|s| s.instructions).sum::<Option<f64>>();
        (ns, ins)
    };
    let (m_ns, m_i) = sum(&|s| s.role == Role::Mandatory);
    let (a_ns, a_i) = sum(&|s| s.role != Role::Rebuild);
    let (r_ns, r_i) = sum(&|_| true);
    println!(
        "{:<42} {:>10.0} {:>14}  -> at most {:.0} events per CPU-second",
        "mandatory (decompress + write/sync)",
        m_ns,
        fmt_i(m_i),
        1e9 / m_ns
    );
    println!(
        "{:<42} {:>10.0} {:>14}  -> at most {:.0} events per CPU-second (no HTTP, no bookkeeping)",
        "the ingest, agents' frames kept",
        a_ns,
        fmt_i(a_i),
        1e9 / a_ns
    );
    println!(
        "{:<42} {:>10.0} {:>14}  -> at most {:.0} events per CPU-second (no HTTP, no bookkeeping)",
        "the ingest, every line compressed anew",
        r_ns,
        fmt_i(r_i),
        1e9 / r_ns
    );
    Ok(())
}
