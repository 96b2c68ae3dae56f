//! The one way vault writes a file: the bytes go to a new owner-only
//! temporary file in the same folder, reach the disk (fsync), take the
//! name in one step (rename, or a hard link when the name must be new),
//! and the folder is synced so the rename itself survives a crash. A
//! reader sees the old file or the new one, never half of one; a full disk
//! leaves the old file as it was. Envelopes (the only copy of a key),
//! tokens.json, the config file and the file store all go through here.

use rand::RngCore;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Temporary files start with this; readers of a folder skip them.
pub const TEMP_PREFIX: &str = ".tmp-";

/// What to do when the file is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it; the new file is owner-only.
    Replace,
    /// Replace it, keeping its permissions (a config file the user shares).
    KeepPermissions,
    /// Fail with `AlreadyExists`, leaving it alone.
    Fail,
}

/// Writes `bytes` to `path` (see the module documentation), creating its
/// folder (0700) when missing.
pub fn write(path: &Path, bytes: &[u8], existing: Existing) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
    }
    let permissions = match existing {
        Existing::KeepPermissions => fs::metadata(path).ok().map(|m| m.permissions()),
        _ => None,
    };
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let temp = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(suffix)));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        // Created with its final mode: never readable by others, not even
        // between creation and a chmod.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        if let Some(p) = permissions {
            file.set_permissions(p)?;
        }
        file.sync_all()?;
        drop(file);
        match existing {
            // A hard link never replaces: that is the "only if absent".
            Existing::Fail => fs::hard_link(&temp, path),
            _ => fs::rename(&temp, path),
        }
    })();
    if existing == Existing::Fail || result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(dir)
}

/// Makes a rename or removal in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_owner_only_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new/sub/file");
        write(&p, b"one", Existing::Replace).unwrap();
        write(&p, b"two", Existing::Replace).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                fs::metadata(p.parent().unwrap())
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o700
            );
        }
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file"]);
    }

    #[test]
    fn fail_keeps_an_existing_file_and_keep_permissions_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"first", Existing::Fail).unwrap();
        let e = write(&p, b"second", Existing::Fail).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            write(&p, b"third", Existing::KeepPermissions).unwrap();
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o644
            );
        }
        assert_eq!(fs::read(&p).unwrap(), b"third");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
