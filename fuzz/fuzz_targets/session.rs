//! Session cache entries (JSON, in the kernel keyring or a store) and the
//! names they are listed under: any bytes decode or fail with an error;
//! what decodes re-encodes to an entry that decodes to the same session,
//! and can be served (its expiry formatted, its time left computed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;
use vault_base::creds::Credentials;
use vault_profile::session::{self, CacheId};

fuzz_target!(|data: &[u8]| {
    // Entries name the id they were written under; the seeds use this one.
    let id = CacheId::from_qualified("session:00000000000000000000000000000000")
        .expect("a well-formed id");
    if let Ok(s) = session::decode(&id, data) {
        let again = session::decode(&id, session::encode(&id, &s).expose())
            .unwrap_or_else(|e| panic!("a decoded entry does not re-decode: {e}"));
        assert_eq!(again, s);
        let _ = s.creds.remaining(SystemTime::now());
        let _ = s.kind.label();
        // What `vault exec --json`, `--ecs-server` and `vault list` make of it.
        let _ = vault_profile::output::rfc3339(s.creds.expiration);
        let _ = vault::ecs::credentials_json(&s.creds);
        let _ =
            vault_profile::output::credential_process_json(&Credentials::Session(s.creds.clone()));
    }
    let name = String::from_utf8_lossy(data);
    if let Some(id) = CacheId::from_qualified(&name) {
        assert_eq!(CacheId::from_qualified(&id.qualified()), Some(id));
    }
});
