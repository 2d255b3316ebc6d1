//! Small file-system helpers: timed `fdatasync`, directory fsync, durable directory creation.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;
use crate::options::FsyncObserver;

/// Milliseconds since the Unix epoch, by the wall clock.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `fdatasync`s `file` (at `path`, for the error) and reports the latency to `observer`.
pub(crate) fn datasync(
    file: &File,
    path: &Path,
    observer: Option<&FsyncObserver>,
) -> Result<(), StoreError> {
    let started = Instant::now();
    file.sync_data()
        .map_err(StoreError::io_fn("fdatasync", path))?;
    if let Some(observe) = observer {
        observe(started.elapsed());
    }
    Ok(())
}

/// fsyncs a directory, making the creation, rename or removal of its entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io_fn("fsync the directory", dir))
}

/// Creates `dir` and its missing parents below `root`, fsyncing the parent of each directory
/// it creates.
pub(crate) fn create_dirs_durably(root: &Path, dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if parent != root && parent.starts_with(root) {
            create_dirs_durably(root, parent)?;
        }
        match std::fs::create_dir(dir) {
            Ok(()) => sync_dir(parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(StoreError::io("create the directory", dir, e)),
        }
    }
    Ok(())
}

/// Removes a file; a file that is already gone is not an error. Says whether it existed.
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// How much of a file [`remove_gradually`] frees at a time, and the pause after each step.
const FREE_STEP: u64 = 4 << 20;
const FREE_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Removes a file that nobody reads any more by cutting it down [`FREE_STEP`] at a time
/// before unlinking it. Says whether it existed.
///
/// Freeing a whole 64 MiB segment at once made the next journal commit of the file system
/// (ext4 here, mounted with `discard`) take 50-100 ms, and every group commit's fdatasync
/// waited for it: measured as acknowledgement latency spikes after each compression. Freed
/// in 4 MiB steps 20 ms apart, the stalls stay within the usual fsync latency.
pub(crate) fn remove_gradually(path: &Path) -> Result<bool, StoreError> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    let mut len = file
        .metadata()
        .map_err(StoreError::io_fn("stat", path))?
        .len();
    while len > FREE_STEP {
        len -= FREE_STEP;
        file.set_len(len)
            .map_err(StoreError::io_fn("truncate", path))?;
        std::thread::sleep(FREE_PAUSE);
    }
    drop(file);
    remove_if_exists(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_dirs_and_reports_what_failed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t1").join("log");
        create_dirs_durably(tmp.path(), &dir).unwrap();
        assert!(dir.is_dir());
        create_dirs_durably(tmp.path(), &dir).unwrap();

        std::fs::write(tmp.path().join("blocker"), b"").unwrap();
        let err = create_dirs_durably(tmp.path(), &tmp.path().join("blocker").join("log"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("blocker"), "{err}");
        assert!(!remove_if_exists(&tmp.path().join("nope")).unwrap());
        assert!(!remove_gradually(&tmp.path().join("nope")).unwrap());
        let big = tmp.path().join("big");
        std::fs::write(&big, vec![7u8; (FREE_STEP * 2 + 5) as usize]).unwrap();
        assert!(remove_gradually(&big).unwrap());
        assert!(!big.exists());
        assert!(remove_if_exists(&tmp.path().join("blocker")).unwrap());
    }
}
