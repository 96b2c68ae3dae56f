//! What vault prints for `--help` and for bad command lines, as snapshot
//! files under tests/cmd/ (trycmd): each file is the command and exactly
//! what it prints and exits with. None of them reaches a store, a token or
//! STS, so they run under plain `cargo test`, without the rig.
//!
//! After an intended change of wording: `TRYCMD=overwrite cargo test --test
//! cli_snapshots`, then read the diff.

#[test]
fn cli_snapshots() {
    trycmd::TestCases::new()
        .default_bin_name("vault")
        // A config that cannot exist, so no case depends on the machine's.
        .env("AWS_CONFIG_FILE", "/nonexistent/vault-snapshots/config")
        .case("tests/cmd/*.md");
}
