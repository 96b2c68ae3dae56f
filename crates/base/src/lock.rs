//! Cross-process locks, one per cache entry (and one per MFA device), so N
//! vault processes started at once make one STS call and ask for one code.
//!
//! `flock` locks belong to the open file description: when a holder dies,
//! however it dies, the kernel releases its lock and the next waiter goes on.

use std::fs::{File, OpenOptions};
use std::io;
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where lock files live: `$XDG_RUNTIME_DIR/vault/locks` (per user, tmpfs)
/// or `~/.cache/vault/locks`.
pub fn lock_dir() -> PathBuf {
    crate::paths::runtime_dir()
        .unwrap_or_else(crate::paths::cache_dir)
        .join("locks")
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
        let (file, path) = open(dir, name)?;
        file.lock()?;
        Ok(Lock { _file: file, path })
    }

    /// Takes the lock only if it is free right now.
    pub fn try_acquire(dir: &Path, name: &str) -> io::Result<Option<Lock>> {
        let (file, path) = open(dir, name)?;
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

/// The lock file, in a folder only the user can enter (Unix modes; on
/// other platforms the user's profile folders are private already).
fn open(dir: &Path, name: &str) -> io::Result<(File, PathBuf)> {
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    folder.mode(0o700);
    folder.create(dir)?;
    let path = dir.join(format!("{name}.lock"));
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    options.mode(0o600);
    Ok((options.open(&path)?, path))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    use std::sync::mpsc::channel;
    use std::time::{Duration, Instant};

    #[test]
    fn a_second_holder_waits_until_the_first_drops_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path(), "abc").unwrap();
        assert!(Lock::try_acquire(dir.path(), "abc").unwrap().is_none());
        drop(first);
        assert!(Lock::try_acquire(dir.path(), "abc").unwrap().is_some());
    }

    /// A holder in another process, killed with SIGKILL (no destructor, no
    /// unlock): the kernel frees the lock and a waiter goes on. The holder
    /// is util-linux `flock --no-fork`, which takes the same flock(2) lock
    /// on the same file as `Lock::acquire` and then becomes `sleep`, so the
    /// lock belongs to exactly the process that is killed.
    #[test]
    fn a_holder_killed_with_sigkill_releases_the_lock_to_a_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = Command::new("flock")
            .args(["--exclusive", "--no-fork"])
            .arg(dir.path().join("abc.lock"))
            .args(["sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("util-linux `flock` (apt-get install util-linux)");
        // Held by the other process: this one cannot take it.
        let end = Instant::now() + Duration::from_secs(10);
        while Lock::try_acquire(dir.path(), "abc").unwrap().is_some() {
            assert!(
                holder.try_wait().unwrap().is_none(),
                "flock exited before taking the lock"
            );
            assert!(Instant::now() < end, "the holder never took the lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        // A waiter blocks on it...
        let (tx, rx) = channel();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let lock = Lock::acquire(&path, "abc").unwrap();
            tx.send(()).unwrap();
            lock
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the waiter got the lock while its holder was alive"
        );
        // ...until the holder dies without unlocking.
        holder.kill().unwrap();
        let status = holder.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{status}");
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the waiter still waits after its holder was killed");
        let held = waiter.join().unwrap();
        assert!(Lock::try_acquire(dir.path(), "abc").unwrap().is_none());
        drop(held);
        assert!(Lock::try_acquire(dir.path(), "abc").unwrap().is_some());
    }
}
