//! The cache-hit path: `vault exec P --json` answered by the `vault` binary
//! alone, which links none of the keychain, PC/SC or HID libraries; every
//! other case handed to `vault-core`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::{session_token_requests, Key, TestEnv, VAULT};

fn linked_libraries(binary: &str) -> String {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn vault_binary_links_no_keychain_pcsc_or_hid_library() {
    let libs = linked_libraries(VAULT);
    for lib in ["libdbus", "libpcsclite", "libudev", "libsystemd"] {
        assert!(!libs.contains(lib), "vault links {lib}:\n{libs}");
    }
    // They are vault-core's, so the split is real and not an accident of linking.
    let core = std::path::Path::new(VAULT).with_file_name("vault-core");
    let core_libs = linked_libraries(core.to_str().unwrap());
    assert!(core_libs.contains("libpcsclite"), "{core_libs}");
}

#[test]
fn a_cache_hit_needs_only_the_vault_binary_and_a_miss_needs_vault_core() {
    let t = TestEnv::new("fastpath");
    t.write_config("[profile p]\nregion = eu-west-1\n");
    let key = Key::random();
    t.add("p", &key);
    let (first, _) = t.exec_json("p", &[]);

    // A copy of `vault` with no vault-core beside it.
    let lone = t.dir.join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    let lone_vault = lone.join("vault");
    std::fs::copy(VAULT, &lone_vault).unwrap();

    let hit = t.cmd(&lone_vault, &["exec", "p", "--json"]).run().success();
    assert_eq!(hit.stderr, "");
    let v: serde_json::Value = serde_json::from_str(hit.stdout.trim()).unwrap();
    assert_eq!(v["AccessKeyId"], first.access_key_id.as_str());
    assert_eq!(
        session_token_requests(&key.id).len(),
        1,
        "the hit made no STS call"
    );

    // A command the fast path does not serve goes to vault-core, which is missing here.
    let miss = t.cmd(&lone_vault, &["list"]).run();
    assert_eq!(miss.code, Some(1));
    assert!(miss.stderr.contains("vault-core"), "{}", miss.stderr);
    assert!(
        miss.stderr
            .contains("hint: vault-core is installed beside vault"),
        "{}",
        miss.stderr
    );
}
