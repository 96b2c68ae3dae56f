//! The encrypted file store's files and file names: any bytes are refused
//! with a reason or open under the key; a file that opens has a canonical
//! header (written again, it is the same file); the stored long-term key
//! inside decodes or fails with an error.
//!
//! The key is fixed (Argon2 on every input would leave no time to fuzz);
//! the seed files are sealed under it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_base::secret::SecretBytes;
use vault_secrets::store::file::{decode_with_key, encode_with_key, item_name_of, NONCE_LEN};
use vault_secrets::store::{decode_key, key_item};

/// The seed files' key and item.
const KEY: [u8; 32] = [0x42; 32];
const ITEM: &str = "key/fuzz";

fuzz_target!(|data: &[u8]| {
    match decode_with_key(data, &KEY, ITEM) {
        Ok((params, salt, plain)) => {
            let nonce: [u8; NONCE_LEN] = data[34..58].try_into().expect("a header has a nonce");
            let again = encode_with_key(&KEY, params, salt, nonce, ITEM, plain.expose());
            assert_eq!(again, data, "the file does not re-encode to itself");
            if let Ok(key) = decode_key(ITEM, &plain) {
                let _ = key.access_key_id;
            }
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
    let _ = decode_key(&key_item("fuzz"), &SecretBytes::new(data.to_vec()));
    if let Ok(name) = std::str::from_utf8(data) {
        if let Some(item) = item_name_of(name) {
            assert_eq!(vault_secrets::store::file::item_file_name(&item), name);
        }
    }
});
