//! The layers are crates, and this test reads their graph from Cargo (see
//! ARCHITECTURE.md): each crate depends only on the layers below it, and
//! the crate the `vault` binary is made of reaches no SDK, runtime,
//! keychain or hardware library, whatever the linker would prune. An
//! upward `use` is already a compile error; this catches an upward
//! dependency added to a Cargo.toml, which would make one possible.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Each workspace crate and the vault crates it may depend on.
const LAYERS: &[(&str, &[&str])] = &[
    ("vault-base", &[]),
    ("vault-token", &["vault-base"]),
    ("vault-prompt", &["vault-base", "vault-token"]),
    (
        "vault-secrets",
        &["vault-base", "vault-token", "vault-prompt"],
    ),
    ("vault-profile", &["vault-base"]),
    ("vault-fast", &["vault-base", "vault-profile"]),
    (
        "vault-aws",
        &[
            "vault-base",
            "vault-token",
            "vault-prompt",
            "vault-secrets",
            "vault-profile",
        ],
    ),
    (
        "vault",
        &[
            "vault-base",
            "vault-token",
            "vault-prompt",
            "vault-secrets",
            "vault-profile",
            "vault-fast",
            "vault-aws",
        ],
    ),
];

/// Libraries that must stay out of a crate's whole dependency tree.
const KEPT_OUT: &[(&str, &[&str])] = &[
    // The binary every `aws` call starts: config, cache, credentials out.
    (
        "vault-fast",
        &[
            "tokio",
            "aws-sdk-sts",
            "aws-sdk-iam",
            "aws-smithy-runtime",
            "hyper",
            "rustls",
            "keyring",
            "dbus",
            "pcsc",
            "yubikey",
            "ctap-hid-fido2",
            "rpassword",
        ],
    ),
    // The network-free model of a profile.
    (
        "vault-profile",
        &["tokio", "aws-sdk-sts", "hyper", "keyring", "pcsc", "clap"],
    ),
    // The hardware knows nothing of AWS or of where secrets are kept.
    (
        "vault-token",
        &["tokio", "aws-sdk-sts", "hyper", "keyring", "dbus", "clap"],
    ),
    ("vault-secrets", &["tokio", "aws-sdk-sts", "hyper", "clap"]),
    // The AWS side takes no command-line type: the CLI converts.
    ("vault-aws", &["clap"]),
];

/// The platform cargo builds for here (`cargo -vV`'s host).
fn host() -> String {
    let out = Command::new(env!("CARGO")).arg("-vV").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .to_string()
}

/// Normal (non-dev, non-build) dependencies of every package, by name, for
/// this platform: offline, other platforms' crates were never downloaded.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let host = host();
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = names[node["id"].as_str().unwrap()].to_string();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| names[d["pkg"].as_str().unwrap()].to_string())
            .collect();
        graph.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    graph
}

fn closure(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(p) = todo.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn each_crate_depends_only_on_the_layers_below_it() {
    let graph = graph();
    let ours: BTreeSet<&str> = LAYERS.iter().map(|(n, _)| *n).collect();
    for (name, allowed) in LAYERS {
        let deps = graph
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not in the workspace"));
        let vault_deps: BTreeSet<&str> = deps
            .iter()
            .map(String::as_str)
            .filter(|d| ours.contains(d))
            .collect();
        let allowed: BTreeSet<&str> = allowed.iter().copied().collect();
        let upward: Vec<_> = vault_deps.difference(&allowed).collect();
        assert!(
            upward.is_empty(),
            "{name} depends on {upward:?}, which it may not (see ARCHITECTURE.md)"
        );
    }
}

#[test]
fn the_cache_hit_crate_and_the_lower_layers_keep_heavy_libraries_out() {
    let graph = graph();
    for (name, banned) in KEPT_OUT {
        let reach = closure(&graph, name);
        let found: Vec<_> = banned.iter().filter(|b| reach.contains(**b)).collect();
        assert!(found.is_empty(), "{name} reaches {found:?}");
    }
    // The check sees a real graph: vault-core's side does reach them.
    let core = closure(&graph, "vault");
    for lib in ["tokio", "aws-sdk-sts", "keyring", "pcsc"] {
        assert!(core.contains(lib), "the vault crate does not reach {lib}");
    }
}
