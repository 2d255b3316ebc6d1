//! The exclusive lock on `<dir>/LOCK` that keeps a second process out of a store directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::StoreError;

/// The lock file's name in the store directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Creates `dir` if needed and takes the exclusive lock on `dir/LOCK`. The lock lasts as
/// long as the returned file is open.
pub(crate) fn acquire(dir: &Path) -> Result<File, StoreError> {
    std::fs::create_dir_all(dir).map_err(StoreError::io_fn("create the store directory", dir))?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(StoreError::io_fn("open the lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(StoreError::io("lock", path, e)),
    }
}
