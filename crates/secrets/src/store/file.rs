//! The encrypted file store, for machines without a usable keychain: one
//! file per item, sealed with XChaCha20-Poly1305 under a key derived from a
//! passphrase with Argon2id.
//!
//! Every file, items and the store's passphrase check `.check` alike, is
//! (integers big-endian):
//!
//! | offset | bytes  | field                                   |
//! |--------|--------|-----------------------------------------|
//! | 0      | 4      | magic `VLTF`                            |
//! | 4      | 1      | format version, 1                       |
//! | 5      | 1      | KDF, 1 = Argon2id version 0x13          |
//! | 6      | 4      | Argon2 memory in KiB                    |
//! | 10     | 4      | Argon2 passes                           |
//! | 14     | 4      | Argon2 lanes                            |
//! | 18     | 16     | Argon2 salt                             |
//! | 34     | 24     | XChaCha20-Poly1305 nonce, random        |
//! | 58     | n + 16 | ciphertext, then the Poly1305 tag       |
//!
//! The associated data is those 58 header bytes followed by `item:NAME` for
//! an item or `check` for the passphrase check, so neither the header nor
//! the file's name can change without failing authentication: a file copied
//! over another item's file does not open.
//!
//! All files of one store carry the salt and parameters of `.check`, so the
//! key is derived once per process; they are repeated in every file so that
//! one file and the passphrase are enough to read it, and so `.check` can
//! be rebuilt from any item if it is lost.

use super::{check_item, Backend, Store, StoreError, StoreOptions};
use argon2::{Algorithm, Argon2, Block, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use vault_base::secret::{Passphrase, SecretBytes};
use vault_prompt::Prompt;
use zeroize::{Zeroize, Zeroizing};

const BACKEND: &str = "file";
const MAGIC: &[u8; 4] = b"VLTF";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
pub const SALT_LEN: usize = 16;
pub const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;
const HEADER_LEN: usize = 4 + 1 + 1 + 4 + 4 + 4 + SALT_LEN + NONCE_LEN;
/// Items are small JSON documents; anything much bigger is not ours.
const MAX_FILE_LEN: u64 = 1 << 20;
const CHECK_PLAINTEXT: &[u8] = b"vault file store";

/// The file that proves a passphrase right before any item is touched.
pub const CHECK_FILE: &str = ".check";
const ITEM_SUFFIX: &str = ".item";
#[cfg(test)]
use vault_base::atomic::TEMP_PREFIX;

const PASSPHRASE_LABEL: &str = "Passphrase for vault's file store";
const CONFIRM_LABEL: &str = "Passphrase for vault's file store (again, to confirm)";

/// The name of `item`'s file: the name in lowercase hex, so any item name
/// is a safe file name and none can point outside the directory.
pub fn item_file_name(item: &str) -> String {
    format!("{}{ITEM_SUFFIX}", hex::encode(item.as_bytes()))
}

/// Argon2id cost. Stored in each file, so a store keeps the cost it was
/// created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub passes: u32,
    pub lanes: u32,
}

impl KdfParams {
    /// 64 MiB and 3 passes: RFC 9106's second recommendation, with one lane
    /// because the argon2 crate computes lanes one after another anyway.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 1,
    };

    /// Bounds a file may claim: a damaged or hostile header must not make
    /// vault allocate gigabytes or spin for hours.
    fn check(self) -> Result<Self, &'static str> {
        let ok = (1..=16).contains(&self.lanes)
            && (8 * self.lanes..=1 << 20).contains(&self.memory_kib)
            && (1..=64).contains(&self.passes);
        if ok {
            Ok(self)
        } else {
            Err("its key-derivation parameters are out of range")
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kdf {
    params: KdfParams,
    salt: [u8; SALT_LEN],
}

struct Header {
    kdf: Kdf,
    nonce: [u8; NONCE_LEN],
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(MAGIC);
        h[4] = VERSION;
        h[5] = KDF_ARGON2ID;
        h[6..10].copy_from_slice(&self.kdf.params.memory_kib.to_be_bytes());
        h[10..14].copy_from_slice(&self.kdf.params.passes.to_be_bytes());
        h[14..18].copy_from_slice(&self.kdf.params.lanes.to_be_bytes());
        h[18..34].copy_from_slice(&self.kdf.salt);
        h[34..58].copy_from_slice(&self.nonce);
        h
    }

    /// The header and the sealed rest; an error says what is wrong, in
    /// words, for `Corrupt`.
    fn parse(file: &[u8]) -> Result<(Header, &[u8]), String> {
        if file.len() as u64 > MAX_FILE_LEN {
            return Err(format!("it is too large ({} bytes)", file.len()));
        }
        if file.len() < 6 || &file[0..4] != MAGIC {
            return Err("it is not a vault file-store file".to_string());
        }
        if file[4] != VERSION {
            return Err(format!(
                "it has format version {}, which this vault does not know (a newer vault wrote it?)",
                file[4]
            ));
        }
        if file[5] != KDF_ARGON2ID {
            return Err(format!("it names an unknown key derivation ({})", file[5]));
        }
        let Some((head, sealed)) = file.split_first_chunk::<HEADER_LEN>() else {
            return Err(format!("it is truncated ({} bytes)", file.len()));
        };
        if sealed.len() < TAG_LEN {
            return Err(format!("it is truncated ({} bytes)", file.len()));
        }
        let word =
            |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let params = KdfParams {
            memory_kib: word(6),
            passes: word(10),
            lanes: word(14),
        }
        .check()?;
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&head[18..34]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&head[34..58]);
        Ok((
            Header {
                kdf: Kdf { params, salt },
                nonce,
            },
            sealed,
        ))
    }
}

/// What a file is sealed for, bound in as associated data.
enum Purpose<'a> {
    Item(&'a str),
    Check,
}

impl Purpose<'_> {
    fn aad(&self, header: &[u8; HEADER_LEN]) -> Vec<u8> {
        let mut aad = header.to_vec();
        match self {
            Purpose::Item(name) => {
                aad.extend_from_slice(b"item:");
                aad.extend_from_slice(name.as_bytes());
            }
            Purpose::Check => aad.extend_from_slice(b"check"),
        }
        aad
    }
}

/// An open file store: the directory and the key, derived once.
pub struct FileStore {
    dir: PathBuf,
    kdf: Kdf,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("kdf", &self.kdf.params)
            .finish_non_exhaustive()
    }
}

/// The interactive way in, for `store::open`: the passphrase comes from
/// `VAULT_FILE_PASSPHRASE` or is asked for, twice when the store is new.
pub(super) fn open(opts: &StoreOptions, prompt: &dyn Prompt) -> Result<FileStore, StoreError> {
    open_with_params(opts, prompt, KdfParams::DEFAULT)
}

fn open_with_params(
    opts: &StoreOptions,
    prompt: &dyn Prompt,
    new_store_params: KdfParams,
) -> Result<FileStore, StoreError> {
    let dir = &opts.file_dir;
    if dir.as_os_str().is_empty() {
        return Err(StoreError::Unavailable {
            backend: BACKEND,
            detail: "no directory for it: neither XDG_DATA_HOME nor HOME is set".to_string(),
            hint: "set HOME or XDG_DATA_HOME".to_string(),
        });
    }
    ensure_dir(dir)?;
    let new_store = !dir.join(CHECK_FILE).exists() && item_files(dir)?.is_empty();
    let passphrase = match &opts.passphrase_env {
        Some(p) => p.clone(),
        None => ask_passphrase(prompt, dir, new_store)?,
    };
    FileStore::open(dir, &passphrase, new_store_params)
}

fn ask_passphrase(
    prompt: &dyn Prompt,
    dir: &Path,
    new_store: bool,
) -> Result<Passphrase, StoreError> {
    let no_prompt = |e: vault_prompt::PromptError| StoreError::Unavailable {
        backend: BACKEND,
        detail: format!("its passphrase is needed and could not be asked for: {e}"),
        hint: "set VAULT_FILE_PASSPHRASE, or run vault where it can prompt".to_string(),
    };
    if new_store {
        prompt.notify(&format!("Creating vault's file store in {}", dir.display()));
    }
    let first = prompt.secret(PASSPHRASE_LABEL).map_err(no_prompt)?;
    if new_store {
        let again = prompt.secret(CONFIRM_LABEL).map_err(no_prompt)?;
        if first != again {
            return Err(StoreError::PassphraseRejected {
                reason: "the two passphrases differ",
            });
        }
    }
    Ok(first)
}

impl FileStore {
    /// Opens the store in `dir` with `passphrase`, creating the store with
    /// `new_store_params` if it does not exist yet. An existing store keeps
    /// the parameters it was made with, which is how tests get cheap stores
    /// that `store::open` then opens as any other.
    pub fn open(
        dir: &Path,
        passphrase: &Passphrase,
        new_store_params: KdfParams,
    ) -> Result<FileStore, StoreError> {
        if passphrase.expose().is_empty() {
            return Err(StoreError::PassphraseRejected {
                reason: "it is empty",
            });
        }
        ensure_dir(dir)?;
        if let Some(check) = read_file(&dir.join(CHECK_FILE))? {
            return Self::unlock(dir, &check, passphrase);
        }
        match Self::recover(dir, passphrase)? {
            Some(store) => Ok(store),
            None => Self::create(dir, passphrase, new_store_params),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn kdf_params(&self) -> KdfParams {
        self.kdf.params
    }

    fn unlock(dir: &Path, check: &[u8], passphrase: &Passphrase) -> Result<FileStore, StoreError> {
        let damaged = |detail: String| StoreError::StoreDamaged {
            dir: dir.display().to_string(),
            detail: format!("its passphrase check {CHECK_FILE} is unreadable: {detail}"),
        };
        let (header, _) = Header::parse(check).map_err(damaged)?;
        let store = FileStore {
            dir: dir.to_path_buf(),
            kdf: header.kdf,
            key: derive(passphrase, &header.kdf)?,
        };
        match store.unseal(check, &Purpose::Check) {
            Ok(plain) if plain.expose() == CHECK_PLAINTEXT => Ok(store),
            Ok(_) => Err(damaged("unexpected content".to_string())),
            // The check authenticates under the right key only: this is
            // the passphrase, not damage (short of deliberate tampering).
            Err(_) => Err(StoreError::WrongPassphrase {
                dir: dir.display().to_string(),
            }),
        }
    }

    /// Items without `.check` (lost, or deleted to repair it): the first
    /// readable item decides whether the passphrase is right, and `.check`
    /// is written again from its parameters.
    fn recover(dir: &Path, passphrase: &Passphrase) -> Result<Option<FileStore>, StoreError> {
        for (name, path) in item_files(dir)? {
            let Some(bytes) = read_file(&path)? else {
                continue;
            };
            let Ok((header, _)) = Header::parse(&bytes) else {
                continue;
            };
            let store = FileStore {
                dir: dir.to_path_buf(),
                kdf: header.kdf,
                key: derive(passphrase, &header.kdf)?,
            };
            if store.unseal(&bytes, &Purpose::Item(&name)).is_err() {
                return Err(StoreError::WrongPassphrase {
                    dir: dir.display().to_string(),
                });
            }
            return store.write_check(passphrase).map(Some);
        }
        Ok(None)
    }

    fn create(
        dir: &Path,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<FileStore, StoreError> {
        params.check().map_err(|reason| StoreError::Other {
            backend: BACKEND,
            detail: format!("refusing to create a store: {reason}"),
        })?;
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let kdf = Kdf { params, salt };
        let store = FileStore {
            dir: dir.to_path_buf(),
            kdf,
            key: derive(passphrase, &kdf)?,
        };
        store.write_check(passphrase)
    }

    /// Writes `.check` unless it exists. When two processes create the
    /// store at once, the second joins the first one's store instead of
    /// replacing its salt under it.
    fn write_check(self, passphrase: &Passphrase) -> Result<FileStore, StoreError> {
        let sealed = self.seal(&Purpose::Check, CHECK_PLAINTEXT)?;
        let path = self.dir.join(CHECK_FILE);
        match write_file(&self.dir, CHECK_FILE, &sealed, Mode::CreateNew) {
            Ok(()) => Ok(self),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let check = read_file(&path)?.ok_or_else(|| StoreError::StoreDamaged {
                    dir: self.dir.display().to_string(),
                    detail: format!("{CHECK_FILE} vanished while it was being created"),
                })?;
                Self::unlock(&self.dir, &check, passphrase)
            }
            Err(e) => Err(io_error("writing", &path, e)),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        // The cipher keeps its own copy of the key and zeroizes it on drop.
        XChaCha20Poly1305::new(Key::from_slice(&self.key[..]))
    }

    fn seal(&self, purpose: &Purpose, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let header = Header {
            kdf: self.kdf,
            nonce,
        };
        seal_file(&self.cipher(), &header, purpose, plain).ok_or_else(|| StoreError::Other {
            backend: BACKEND,
            detail: "encryption failed".to_string(),
        })
    }

    fn unseal(&self, file: &[u8], purpose: &Purpose) -> Result<SecretBytes, String> {
        let (header, sealed) = Header::parse(file)?;
        if header.kdf != self.kdf {
            return Err(
                "it was sealed under another store's key (different salt or parameters); \
                 was it copied from elsewhere?"
                    .to_string(),
            );
        }
        unseal_file(&self.cipher(), &header, sealed, purpose)
    }

    fn item_path(&self, item: &str) -> PathBuf {
        self.dir.join(item_file_name(item))
    }
}

impl Store for FileStore {
    fn backend(&self) -> Backend {
        Backend::File
    }

    fn get(&self, item: &str) -> Result<Option<SecretBytes>, StoreError> {
        check_item(item)?;
        let Some(file) = read_file(&self.item_path(item))? else {
            return Ok(None);
        };
        self.unseal(&file, &Purpose::Item(item))
            .map(Some)
            .map_err(|detail| StoreError::Corrupt {
                item: item.to_string(),
                detail,
            })
    }

    fn set(&self, item: &str, value: &SecretBytes) -> Result<(), StoreError> {
        check_item(item)?;
        let sealed = self.seal(&Purpose::Item(item), value.expose())?;
        let name = item_file_name(item);
        write_file(&self.dir, &name, &sealed, Mode::Replace)
            .map_err(|e| io_error("writing", &self.dir.join(&name), e))
    }

    fn delete(&self, item: &str) -> Result<bool, StoreError> {
        check_item(item)?;
        let path = self.item_path(item);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.dir).map_err(|e| io_error("syncing", &self.dir, e))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("removing", &path, e)),
        }
    }

    fn list(&self) -> Result<Vec<String>, StoreError> {
        Ok(item_files(&self.dir)?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }
}

/// A whole file: the header, then `plain` sealed for `purpose`.
fn seal_file(
    cipher: &XChaCha20Poly1305,
    header: &Header,
    purpose: &Purpose,
    plain: &[u8],
) -> Option<Vec<u8>> {
    let header = header.encode();
    let aad = purpose.aad(&header);
    let nonce = XNonce::from_slice(&header[34..58]);
    let sealed = cipher
        .encrypt(
            nonce,
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .ok()?;
    let mut file = header.to_vec();
    file.extend_from_slice(&sealed);
    Some(file)
}

/// The plaintext of a file whose header is `header` and the rest `sealed`.
fn unseal_file(
    cipher: &XChaCha20Poly1305,
    header: &Header,
    sealed: &[u8],
    purpose: &Purpose,
) -> Result<SecretBytes, String> {
    let aad = purpose.aad(&header.encode());
    let plain = cipher
        .decrypt(
            XNonce::from_slice(&header.nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| {
            "it does not authenticate: it was altered, or it is another item's file".to_string()
        })?;
    Ok(SecretBytes::new(plain))
}

/// Reads item `item`'s file under an already derived `key`, as
/// [`FileStore`]'s `get` does: the key-derivation parameters and salt it
/// names, and the plaintext. For the fuzz targets and seed files, which
/// cannot afford Argon2 on every input.
#[doc(hidden)]
pub fn decode_with_key(
    file: &[u8],
    key: &[u8; KEY_LEN],
    item: &str,
) -> Result<(KdfParams, [u8; SALT_LEN], SecretBytes), String> {
    let (header, sealed) = Header::parse(file)?;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let plain = unseal_file(&cipher, &header, sealed, &Purpose::Item(item))?;
    Ok((header.kdf.params, header.kdf.salt, plain))
}

/// The inverse of [`decode_with_key`], with the nonce given: what
/// [`FileStore`]'s `set` writes. For the fuzz targets and seed files.
#[doc(hidden)]
pub fn encode_with_key(
    key: &[u8; KEY_LEN],
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    item: &str,
    plain: &[u8],
) -> Vec<u8> {
    let header = Header {
        kdf: Kdf { params, salt },
        nonce,
    };
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    // XChaCha20-Poly1305 fails only past 256 GiB of plaintext.
    seal_file(&cipher, &header, &Purpose::Item(item), plain).unwrap_or_default()
}

/// The item a file in the store's directory holds, from its name: the
/// item's name in lowercase hex, then `.item`. Anything else is not an
/// item (temporary files, `.check`, another spelling of a name).
pub fn item_name_of(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(ITEM_SUFFIX)?;
    let name = String::from_utf8(hex::decode(stem).ok()?).ok()?;
    // Only the spelling vault writes, so one item never lists twice.
    (item_file_name(&name) == file_name).then_some(name)
}

/// The key for `kdf`. Argon2's working memory holds state from which the
/// key follows, so it is vault's own buffer, wiped after use (the argon2
/// crate wipes nothing unless built with its `zeroize` feature).
fn derive(passphrase: &Passphrase, kdf: &Kdf) -> Result<Zeroizing<[u8; KEY_LEN]>, StoreError> {
    struct Wiped(Vec<Block>);
    impl Drop for Wiped {
        fn drop(&mut self) {
            for block in &mut self.0 {
                block.as_mut().zeroize();
            }
        }
    }
    let failed = |e: argon2::Error| StoreError::Other {
        backend: BACKEND,
        detail: format!("deriving the key: {e}"),
    };
    let p = kdf.params;
    let params =
        argon2::Params::new(p.memory_kib, p.passes, p.lanes, Some(KEY_LEN)).map_err(failed)?;
    let mut memory = Wiped(vec![Block::new(); params.block_count()]);
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    argon2
        .hash_password_into_with_memory(
            passphrase.expose().as_bytes(),
            &kdf.salt,
            &mut key[..],
            &mut memory.0,
        )
        .map_err(failed)?;
    Ok(key)
}

/// Creates `dir` owner-only, and makes an existing one owner-only: the
/// file names alone say which profiles exist.
fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io_error("creating", dir, e))?;
    let meta = fs::metadata(dir).map_err(|e| io_error("reading", dir, e))?;
    if !meta.is_dir() {
        return Err(StoreError::Unavailable {
            backend: BACKEND,
            detail: format!("{} is not a directory", dir.display()),
            hint: "point the file store at a directory of its own".to_string(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_error("restricting the permissions of", dir, e))?;
        }
    }
    Ok(())
}

/// The items in `dir`, by name, sorted. Temporary files, `.check` and
/// anything that does not decode to an item name are not items.
fn item_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("listing", dir, e)),
    };
    let mut items = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("listing", dir, e))?;
        if let Some(name) = entry.file_name().to_str().and_then(item_name_of) {
            items.push((name, entry.path()));
        }
    }
    items.sort();
    Ok(items)
}

/// The file's bytes, or `None` when it does not exist. Reads at most one
/// byte past the limit, so a huge file is refused without being loaded.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("reading", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("reading", path, e))?;
    Ok(Some(bytes))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Replace,
    /// Fails with `AlreadyExists` if the file is there.
    CreateNew,
}

/// Writes `dir/name` all at once ([`vault_base::atomic`]).
fn write_file(dir: &Path, name: &str, bytes: &[u8], mode: Mode) -> io::Result<()> {
    let existing = match mode {
        Mode::Replace => vault_base::atomic::Existing::Replace,
        Mode::CreateNew => vault_base::atomic::Existing::Fail,
    };
    vault_base::atomic::write(&dir.join(name), bytes, existing)
}

use vault_base::atomic::sync_dir;

fn io_error(doing: &str, path: &Path, e: io::Error) -> StoreError {
    let detail = format!("{doing} {}: {e}", path.display());
    if e.kind() == io::ErrorKind::PermissionDenied {
        StoreError::Denied {
            backend: BACKEND,
            detail,
            hint: "the file store's directory and files must belong to you (mode 0700 and 0600)"
                .to_string(),
        }
    } else {
        StoreError::Other {
            backend: BACKEND,
            detail,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::cell::RefCell;
    #[cfg(unix)]
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use vault_base::secret::MfaCode;
    use vault_prompt::PromptError;

    /// Argon2id at its cheapest, so tests do not spend seconds per store.
    const CHEAP: KdfParams = KdfParams {
        memory_kib: 8,
        passes: 1,
        lanes: 1,
    };

    fn pass(p: &str) -> Passphrase {
        Passphrase::new(p)
    }

    fn value(v: &str) -> SecretBytes {
        SecretBytes::new(v.as_bytes().to_vec())
    }

    fn new_store() -> (tempfile::TempDir, FileStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = FileStore::open(&tmp.path().join("store"), &pass("right"), CHEAP).unwrap();
        (tmp, store)
    }

    fn get_str(store: &FileStore, item: &str) -> Option<String> {
        store
            .get(item)
            .unwrap()
            .map(|v| String::from_utf8(v.expose().to_vec()).unwrap())
    }

    fn corrupt_detail(r: Result<Option<SecretBytes>, StoreError>, item: &str) -> String {
        match r {
            Err(StoreError::Corrupt { item: i, detail }) => {
                assert_eq!(i, item);
                detail
            }
            other => panic!("expected Corrupt for {item}, got {other:?}"),
        }
    }

    #[test]
    fn set_get_replace_delete_list() {
        let (_tmp, store) = new_store();
        assert_eq!(store.list().unwrap(), Vec::<String>::new());
        assert!(store.get("key/a").unwrap().is_none());
        store.set("key/a", &value("one")).unwrap();
        store.set("key/b", &value("")).unwrap();
        assert_eq!(get_str(&store, "key/a").as_deref(), Some("one"));
        assert_eq!(get_str(&store, "key/b").as_deref(), Some(""));
        store.set("key/a", &value("two")).unwrap();
        assert_eq!(get_str(&store, "key/a").as_deref(), Some("two"));
        assert_eq!(store.list().unwrap(), ["key/a", "key/b"]);
        assert!(store.delete("key/a").unwrap());
        assert!(!store.delete("key/a").unwrap());
        assert!(store.get("key/a").unwrap().is_none());
        assert_eq!(store.list().unwrap(), ["key/b"]);
    }

    #[test]
    fn a_second_open_reads_what_the_first_wrote_and_keeps_the_store_cost() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("one")).unwrap();
        // Asking for the default cost does not change an existing store.
        let again = FileStore::open(store.dir(), &pass("right"), KdfParams::DEFAULT).unwrap();
        assert_eq!(again.kdf_params(), CHEAP);
        assert_eq!(get_str(&again, "key/a").as_deref(), Some("one"));
    }

    #[test]
    fn wrong_passphrase_is_told_apart_from_damage() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("one")).unwrap();
        let err = FileStore::open(store.dir(), &pass("wrong"), CHEAP).unwrap_err();
        assert!(matches!(err, StoreError::WrongPassphrase { .. }), "{err:?}");
        assert!(
            !err.to_string().contains("wrong\""),
            "no passphrase in messages"
        );
    }

    #[test]
    fn empty_passphrase_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = FileStore::open(tmp.path(), &pass(""), CHEAP).unwrap_err();
        assert!(
            matches!(err, StoreError::PassphraseRejected { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn any_flipped_bit_fails_authentication() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("secret value")).unwrap();
        let path = store.item_path("key/a");
        let good = fs::read(&path).unwrap();
        // Header fields other than the KDF's (checked first) and every
        // byte of ciphertext and tag.
        for at in (0..4).chain(34..good.len()) {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            fs::write(&path, &bad).unwrap();
            corrupt_detail(store.get("key/a"), "key/a");
        }
        fs::write(&path, &good).unwrap();
        assert_eq!(get_str(&store, "key/a").as_deref(), Some("secret value"));
    }

    #[test]
    fn changed_kdf_header_is_refused_without_deriving() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("v")).unwrap();
        let path = store.item_path("key/a");
        let mut bad = fs::read(&path).unwrap();
        bad[20] ^= 0xff; // in the salt
        fs::write(&path, &bad).unwrap();
        let detail = corrupt_detail(store.get("key/a"), "key/a");
        assert!(detail.contains("another store"), "{detail}");
    }

    #[test]
    fn a_file_copied_over_another_item_does_not_open() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("for a")).unwrap();
        store.set("key/b", &value("for b")).unwrap();
        fs::copy(store.item_path("key/a"), store.item_path("key/b")).unwrap();
        let detail = corrupt_detail(store.get("key/b"), "key/b");
        assert!(detail.contains("another item"), "{detail}");
        assert_eq!(get_str(&store, "key/a").as_deref(), Some("for a"));
    }

    #[test]
    fn malformed_files_are_corrupt_never_a_panic() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("v")).unwrap();
        let path = store.item_path("key/a");
        let good = fs::read(&path).unwrap();
        for len in [
            0,
            1,
            3,
            4,
            5,
            6,
            10,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + TAG_LEN - 1,
            good.len() - 1,
        ] {
            fs::write(&path, &good[..len]).unwrap();
            corrupt_detail(store.get("key/a"), "key/a");
        }
        let mut longer = good.clone();
        longer.push(0);
        fs::write(&path, &longer).unwrap();
        corrupt_detail(store.get("key/a"), "key/a");

        let mut garbage = vec![0u8; 300];
        OsRng.fill_bytes(&mut garbage);
        fs::write(&path, &garbage).unwrap();
        let detail = corrupt_detail(store.get("key/a"), "key/a");
        assert!(detail.contains("not a vault"), "{detail}");

        let mut newer = good.clone();
        newer[4] = 2;
        fs::write(&path, &newer).unwrap();
        let detail = corrupt_detail(store.get("key/a"), "key/a");
        assert!(detail.contains("version 2"), "{detail}");

        let mut costly = good.clone();
        costly[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        fs::write(&path, &costly).unwrap();
        let detail = corrupt_detail(store.get("key/a"), "key/a");
        assert!(detail.contains("out of range"), "{detail}");

        let mut huge = good.clone();
        huge.resize(MAX_FILE_LEN as usize + 10, 0);
        fs::write(&path, &huge).unwrap();
        let detail = corrupt_detail(store.get("key/a"), "key/a");
        assert!(detail.contains("too large"), "{detail}");
    }

    #[test]
    fn damaged_check_file_is_named_as_such() {
        let (_tmp, store) = new_store();
        fs::write(store.dir().join(CHECK_FILE), b"VLTF").unwrap();
        let err = FileStore::open(store.dir(), &pass("right"), CHEAP).unwrap_err();
        assert!(matches!(err, StoreError::StoreDamaged { .. }), "{err:?}");
        assert!(err.hint().unwrap().contains(".check"));
    }

    #[test]
    fn lost_check_file_is_rebuilt_from_an_item_with_the_right_passphrase_only() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("one")).unwrap();
        let check = store.dir().join(CHECK_FILE);
        fs::remove_file(&check).unwrap();
        let err = FileStore::open(store.dir(), &pass("wrong"), CHEAP).unwrap_err();
        assert!(matches!(err, StoreError::WrongPassphrase { .. }), "{err:?}");
        assert!(!check.exists(), "a wrong passphrase must not write a check");
        let again = FileStore::open(store.dir(), &pass("right"), KdfParams::DEFAULT).unwrap();
        assert_eq!(again.kdf_params(), CHEAP);
        assert!(check.exists());
        assert_eq!(get_str(&again, "key/a").as_deref(), Some("one"));
        let err = FileStore::open(store.dir(), &pass("wrong"), CHEAP).unwrap_err();
        assert!(matches!(err, StoreError::WrongPassphrase { .. }), "{err:?}");
    }

    #[test]
    fn stores_created_at_once_agree_on_one_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let stores: Vec<FileStore> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| FileStore::open(&dir, &pass("right"), CHEAP).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        stores[0].set("key/a", &value("one")).unwrap();
        for store in &stores {
            assert_eq!(get_str(store, "key/a").as_deref(), Some("one"));
        }
    }

    #[test]
    fn item_names_become_hex_file_names_inside_the_store() {
        let (_tmp, store) = new_store();
        for name in ["../../etc/passwd", "key/a b", "ключ", ".check"] {
            store.set(name, &value("v")).unwrap();
            assert_eq!(store.item_path(name).parent(), Some(store.dir()));
        }
        assert_eq!(item_file_name("key/a"), "6b65792f61.item");
        assert_eq!(
            store.list().unwrap(),
            ["../../etc/passwd", ".check", "key/a b", "ключ"]
        );
        assert_eq!(get_str(&store, ".check").as_deref(), Some("v"));
        let long = "x".repeat(crate::store::MAX_ITEM_LEN);
        store.set(&long, &value("v")).unwrap();
        assert!(matches!(
            store.set("__index__", &value("v")),
            Err(StoreError::InvalidItem { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn directory_is_0700_and_files_0600() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("v")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&store.dir().join(CHECK_FILE)), 0o600);
        assert_eq!(mode(&store.item_path("key/a")), 0o600);
        store.set("key/a", &value("w")).unwrap();
        assert_eq!(mode(&store.item_path("key/a")), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_open_directory_is_closed_to_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        FileStore::open(&dir, &pass("right"), CHEAP).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[cfg(unix)]
    #[test]
    fn replacing_swaps_in_a_new_file_and_leaves_no_temporaries() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("old")).unwrap();
        let path = store.item_path("key/a");
        let old_inode = fs::metadata(&path).unwrap().ino();
        // What a crash in the middle of a write leaves behind.
        fs::write(store.dir().join(".tmp-0011223344556677"), b"half a fi").unwrap();
        assert_eq!(get_str(&store, "key/a").as_deref(), Some("old"));
        assert_eq!(store.list().unwrap(), ["key/a"]);

        store.set("key/a", &value("new")).unwrap();
        assert_ne!(
            fs::metadata(&path).unwrap().ino(),
            old_inode,
            "rewritten in place"
        );
        assert_eq!(get_str(&store, "key/a").as_deref(), Some("new"));
        let temps: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX) && n != ".tmp-0011223344556677")
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_failed_write_keeps_the_old_value() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("old")).unwrap();
        let dir_mode = fs::Permissions::from_mode(0o500);
        fs::set_permissions(store.dir(), dir_mode).unwrap();
        let result = store.set("key/a", &value("new"));
        fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o700)).unwrap();
        // As root the write goes through anyway; either way nothing is lost.
        match result {
            Err(StoreError::Denied { .. }) => {
                assert_eq!(get_str(&store, "key/a").as_deref(), Some("old"))
            }
            Ok(()) => assert_eq!(get_str(&store, "key/a").as_deref(), Some("new")),
            Err(other) => panic!("{other:?}"),
        }
    }

    /// Answers `secret` from a script and records what was asked.
    struct Scripted {
        answers: RefCell<Vec<Result<Passphrase, PromptError>>>,
        asked: RefCell<Vec<String>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<Passphrase, PromptError>>) -> Self {
            Scripted {
                answers: RefCell::new(answers),
                asked: RefCell::new(Vec::new()),
            }
        }
    }

    impl Prompt for Scripted {
        fn mfa_code(&self, _: &str, _: &str) -> Result<MfaCode, PromptError> {
            panic!("the file store never asks for an MFA code")
        }
        fn secret(&self, label: &str) -> Result<Passphrase, PromptError> {
            self.asked.borrow_mut().push(label.to_string());
            let mut answers = self.answers.borrow_mut();
            assert!(!answers.is_empty(), "asked once too often: {label}");
            answers.remove(0)
        }
        fn text(&self, _: &str) -> Result<String, PromptError> {
            panic!("the file store never asks for text")
        }
        fn notify(&self, _: &str) {}
    }

    fn options(dir: &Path, env: Option<&str>) -> StoreOptions {
        StoreOptions {
            service: "vault-test".to_string(),
            file_dir: dir.to_path_buf(),
            passphrase_env: env.map(pass),
        }
    }

    #[test]
    fn a_new_store_asks_twice_and_refuses_a_mismatch() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(&tmp.path().join("s"), None);
        let prompt = Scripted::new(vec![Ok(pass("one")), Ok(pass("two"))]);
        let err = open_with_params(&opts, &prompt, CHEAP).unwrap_err();
        assert!(
            matches!(err, StoreError::PassphraseRejected { .. }),
            "{err:?}"
        );
        assert!(!opts.file_dir.join(CHECK_FILE).exists());

        let prompt = Scripted::new(vec![Ok(pass("one")), Ok(pass("one"))]);
        open_with_params(&opts, &prompt, CHEAP).unwrap();
        assert_eq!(prompt.asked.borrow().len(), 2);
        assert_eq!(prompt.asked.borrow()[0], PASSPHRASE_LABEL);

        let prompt = Scripted::new(vec![Ok(pass("one"))]);
        open_with_params(&opts, &prompt, CHEAP).unwrap();
        assert_eq!(*prompt.asked.borrow(), [PASSPHRASE_LABEL]);
    }

    #[test]
    fn the_environment_passphrase_means_no_prompt() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(&tmp.path().join("s"), Some("from env"));
        let prompt = Scripted::new(vec![]);
        open_with_params(&opts, &prompt, CHEAP).unwrap();
        open_with_params(&opts, &prompt, CHEAP).unwrap();
        let wrong = options(&opts.file_dir, Some("not it"));
        let err = open_with_params(&wrong, &prompt, CHEAP).unwrap_err();
        assert!(matches!(err, StoreError::WrongPassphrase { .. }), "{err:?}");
    }

    #[test]
    fn no_way_to_ask_says_to_set_the_variable() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(&tmp.path().join("s"), None);
        let prompt = Scripted::new(vec![Err(PromptError::Unavailable("no tty".to_string()))]);
        let err = open_with_params(&opts, &prompt, CHEAP).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert!(err.hint().unwrap().contains("VAULT_FILE_PASSPHRASE"));
    }

    #[test]
    fn no_directory_is_unavailable() {
        let opts = options(Path::new(""), Some("p"));
        let err = open_with_params(&opts, &Scripted::new(vec![]), CHEAP).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    }

    #[test]
    fn header_layout_is_as_documented() {
        let (_tmp, store) = new_store();
        store.set("key/a", &value("abc")).unwrap();
        let file = fs::read(store.item_path("key/a")).unwrap();
        assert_eq!(&file[0..4], b"VLTF");
        assert_eq!(file[4], 1);
        assert_eq!(file[5], 1);
        assert_eq!(&file[6..10], &CHEAP.memory_kib.to_be_bytes());
        assert_eq!(&file[10..14], &CHEAP.passes.to_be_bytes());
        assert_eq!(&file[14..18], &CHEAP.lanes.to_be_bytes());
        assert_eq!(&file[18..34], &store.kdf.salt);
        assert_eq!(file.len(), HEADER_LEN + 3 + TAG_LEN);
        assert!(!file.windows(3).any(|w| w == b"abc"), "plaintext on disk");
    }
}
