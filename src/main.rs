//! `vault`: the cache-hit path of `vault exec` (the vault-fast crate), and
//! for everything else, `vault-core` in its place.
#![forbid(unsafe_code)]
use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    vault_base::harden::process();
    let argv: Vec<OsString> = std::env::args_os().collect();
    // Asked for at every <TAB>: answered here, without starting vault-core.
    if argv.len() == 2 && argv[1] == vault_fast::PROFILES_ARG {
        return vault_fast::complete_profiles();
    }
    if let Some(code) = vault_fast::run(&argv) {
        return code;
    }
    let core = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("vault-core")))
        .unwrap_or_else(|| "vault-core".into());
    hand_over(&core, &argv)
}

#[cfg(unix)]
fn hand_over(core: &std::path::Path, argv: &[OsString]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    // execve: vault-core takes this process's place, stdio, tty and all.
    vault_base::harden::before_exec();
    let err = std::process::Command::new(core)
        .arg0("vault")
        .args(argv.iter().skip(1))
        .exec();
    vault_base::harden::after_failed_exec();
    missing_core(core, err)
}

#[cfg(not(unix))]
fn hand_over(core: &std::path::Path, argv: &[OsString]) -> ExitCode {
    match std::process::Command::new(core)
        .args(argv.iter().skip(1))
        .status()
    {
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => missing_core(core, e),
    }
}

fn missing_core(core: &std::path::Path, e: std::io::Error) -> ExitCode {
    eprintln!("vault: cannot run {}: {e}", core.display());
    eprintln!("vault: hint: vault-core is installed beside vault; reinstall with `cargo install --path .`");
    ExitCode::FAILURE
}
