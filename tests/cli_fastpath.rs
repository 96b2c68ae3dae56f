//! The cache-hit path: `vault exec P --json` answered by the `vault` binary
//! alone, which links none of the keychain, PC/SC or HID libraries; every
//! other case handed to `vault-core`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use std::collections::BTreeSet;
use support::{session_token_requests, TestEnv, VAULT};

/// Every shared object `binary` loads, directly or through another (what
/// `ldd` resolves), by file name: `libc.so.6`, `linux-vdso.so.1`, ...
fn linked_libraries(binary: &str) -> BTreeSet<String> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd ({e}): apt-get install libc-bin"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ldd {binary}: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let libs: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| name.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(!libs.is_empty(), "ldd listed nothing for {binary}");
    libs
}

/// What the fast path may load: the C library, Rust's unwinder (libgcc_s,
/// which std links for panics), the dynamic loader and the kernel's vDSO.
fn allowed(lib: &str) -> bool {
    lib == "libc.so.6"
        || lib == "libgcc_s.so.1"
        || (lib.starts_with("ld-linux") && lib.contains(".so."))
        || lib.starts_with("linux-vdso.so.")
        || lib.starts_with("linux-gate.so.")
}

#[test]
fn vault_binary_links_only_libc_libgcc_s_and_the_loader() {
    let libs = linked_libraries(VAULT);
    let extra: Vec<&String> = libs.iter().filter(|l| !allowed(l)).collect();
    assert!(
        extra.is_empty(),
        "vault loads {extra:?} beyond libc, libgcc_s and the loader: {libs:?}"
    );
    assert!(libs.contains("libc.so.6"), "{libs:?}");
    // The keychain, PC/SC and HID libraries are vault-core's, so the split
    // is real and not an accident of linking.
    let core = std::path::Path::new(VAULT).with_file_name("vault-core");
    let core_libs = linked_libraries(core.to_str().unwrap());
    for lib in ["libpcsclite.so.1", "libdbus-1.so.3", "libudev.so.1"] {
        assert!(
            core_libs.contains(lib),
            "vault-core lacks {lib}: {core_libs:?}"
        );
    }
}

#[test]
fn a_cache_hit_needs_only_the_vault_binary_and_a_miss_needs_vault_core() {
    let t = TestEnv::new("fastpath");
    t.write_config("[profile p]\nregion = eu-west-1\n");
    let key = t.key("alice");
    t.add("p", &key);
    let (first, _) = t.exec_json("p", &[]);
    let miss = session_token_requests(&key.id);
    assert_eq!(miss.len(), 1, "{miss:?}");
    assert_eq!((miss[0].status, miss[0].error.as_deref()), (200, None));

    // A copy of `vault` with no vault-core beside it.
    let lone = t.dir.join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    let lone_vault = lone.join("vault");
    std::fs::copy(VAULT, &lone_vault).unwrap();

    let hit = t.cmd(&lone_vault, &["exec", "p", "--json"]).run().success();
    assert_eq!(hit.stderr, "");
    let v: serde_json::Value = serde_json::from_str(hit.stdout.trim()).unwrap();
    // The same session (the strict STS gives fresh credentials on every
    // call), and no request since the first (a proven read).
    assert_eq!(v["AccessKeyId"], first.access_key_id.as_str());
    assert_eq!(v["SecretAccessKey"], first.secret_access_key.as_str());
    assert_eq!(v["SessionToken"].as_str(), first.session_token.as_deref());
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

#[test]
fn the_vault_binary_holds_no_async_runtime_and_no_sdk() {
    // The crates whose functions each binary defines, from its symbol table
    // (`nm`, binutils, which gcc brings): the cache-hit binary must define
    // none of the runtime's, the SDK's, the keychain's or PC/SC's, while
    // vault-core defines them all (so the check can see them).
    let crates = |binary: &std::path::Path| -> BTreeSet<String> {
        let out = std::process::Command::new("nm")
            .args(["-C", "--defined-only"])
            .arg(binary)
            .output()
            .expect("nm (binutils: apt-get install binutils)");
        assert!(out.status.success(), "nm {}: {out:?}", binary.display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.splitn(3, ' ').nth(2))
            .filter_map(|sym| sym.trim_start_matches('<').split("::").next())
            .map(str::to_string)
            .collect()
    };
    let vault = std::path::Path::new(VAULT);
    let (mine, core) = (crates(vault), crates(&vault.with_file_name("vault-core")));
    for krate in [
        "tokio",
        "aws_sdk_sts",
        "aws_smithy_runtime",
        "hyper",
        "keyring",
        "pcsc",
    ] {
        assert!(
            !mine.contains(krate),
            "the vault binary defines {krate} code"
        );
        assert!(
            core.contains(krate),
            "vault-core defines no {krate} code: the check sees nothing"
        );
    }
}
