//! Handing credentials over: `credential_process` JSON on stdout, or the
//! command run in vault's place with the credentials in its environment.

use crate::cli::ExecArgs;
use crate::Failure;
use std::ffi::OsString;
use std::io::Write;
use vault_base::creds::Credentials;
use vault_profile::output;

/// Hands the credentials over: the credential_process JSON on stdout, or
/// the command run in vault's place. vault-core's `exec` calls it too, so
/// a hit and a miss behave the same.
pub fn deliver(
    args: &ExecArgs,
    creds: &Credentials,
    region: Option<&str>,
) -> Result<std::process::ExitCode, Failure> {
    if args.json {
        let line = output::credential_process_json(creds);
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| Failure::new(format!("cannot write to stdout: {e}"), None))?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let argv = command_line(args);
    let env = output::child_env(std::env::vars_os(), creds, region, &args.profile);
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(env);
    log::debug!(target: "vault", "running {:?} with profile {}", argv[0], args.profile);
    run_child(cmd, &argv[0])
}

/// The command to run: the one given, else `$SHELL`, else `/bin/sh`.
pub fn command_line(args: &ExecArgs) -> Vec<OsString> {
    let mut argv: Vec<OsString> = args.command.clone();
    if argv.is_empty() {
        argv.push(
            std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into()),
        );
    }
    argv
}

#[cfg(unix)]
fn run_child(
    mut cmd: std::process::Command,
    program: &OsString,
) -> Result<std::process::ExitCode, Failure> {
    use std::os::unix::process::CommandExt;
    // execve: the command takes vault's place, so its exit status and
    // signals are the caller's to see, and nothing of vault stays in memory.
    vault_base::harden::before_exec();
    let err = cmd.exec();
    vault_base::harden::after_failed_exec();
    Err(exec_error(program, err))
}

#[cfg(not(unix))]
fn run_child(
    mut cmd: std::process::Command,
    program: &OsString,
) -> Result<std::process::ExitCode, Failure> {
    let status = cmd.status().map_err(|e| exec_error(program, e))?;
    Ok(std::process::ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8,
    ))
}

/// Why a command could not be started, as the user is told.
pub fn exec_error(program: &OsString, e: std::io::Error) -> Failure {
    let name = program.to_string_lossy();
    if e.kind() == std::io::ErrorKind::NotFound {
        Failure::new(
            format!("cannot run {name}: command not found"),
            Some("check the command name and PATH".to_string()),
        )
    } else {
        Failure::new(format!("cannot run {name}: {e}"), None)
    }
}
