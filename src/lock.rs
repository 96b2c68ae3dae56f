//! Cross-process locks, one per cache entry (and one per MFA device), so N
//! vault processes started at once make one STS call and ask for one code.
//!
//! `flock` locks belong to the open file description: when a holder dies,
//! however it dies, the kernel releases its lock and the next waiter goes on.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where lock files live: `$XDG_RUNTIME_DIR/vault/locks` (per user, tmpfs)
/// or `~/.cache/vault/locks`.
pub fn lock_dir() -> PathBuf {
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(run).join("vault/locks");
    }
    crate::paths::cache_dir().join("locks")
}

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock named `name` (a hex id, safe as a file name), waiting
    /// as long as another process holds it.
    pub fn acquire(dir: &Path, name: &str) -> io::Result<Lock> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        file.lock()?;
        Ok(Lock { _file: file, path })
    }

    /// Takes the lock only if it is free right now.
    pub fn try_acquire(dir: &Path, name: &str) -> io::Result<Option<Lock>> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let path = dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file, path })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_and_dead_holder_releases() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "abc").unwrap();
        assert!(Lock::try_acquire(dir.path(), "abc").unwrap().is_none());
        drop(first);
        assert!(Lock::try_acquire(dir.path(), "abc").unwrap().is_some());
    }
}
