//! `vault exec PROFILE [-- CMD ARGS]` and `vault exec PROFILE --json`.

use crate::app::{env_var, App};
use crate::cli::ExecArgs;
use crate::error::Error;
use crate::output;
use std::ffi::OsString;
use std::io::Write;

/// A vault shell inside a vault shell would stack one profile's credentials
/// on another's; aws-vault refuses it too.
pub fn refuse_nesting() -> Result<(), Error> {
    if let Some(p) = env_var("AWS_VAULT") {
        return Err(Error::usage(
            format!("already in a vault subshell for profile \"{p}\" (AWS_VAULT is set)"),
            Some("exit that shell first, or unset AWS_VAULT if you mean it".to_string()),
        ));
    }
    Ok(())
}

pub fn run(app: &App, args: &ExecArgs) -> Result<std::process::ExitCode, Error> {
    refuse_nesting()?;
    let r = super::credentials(app, &args.profile, &args.session)?;
    if args.json {
        let mut line = output::credential_process_json(&r.creds);
        line.push('\n');
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| Error::Other(format!("cannot write to stdout: {e}")))?;
        return Ok(std::process::ExitCode::SUCCESS);
    }

    let mut argv: Vec<OsString> = args.command.clone();
    if argv.is_empty() {
        argv.push(
            std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into()),
        );
    }
    let env = output::child_env(
        std::env::vars_os(),
        &r.creds,
        r.region.as_deref(),
        &args.profile,
    );
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(env);
    log::debug!(target: "vault", "running {:?} with profile {}", argv[0], args.profile);
    run_child(cmd, &argv[0])
}

#[cfg(unix)]
fn run_child(
    mut cmd: std::process::Command,
    program: &OsString,
) -> Result<std::process::ExitCode, Error> {
    use std::os::unix::process::CommandExt;
    // execve: the command takes vault's place, so its exit status and
    // signals are the caller's to see, and nothing of vault stays in memory.
    let err = cmd.exec();
    Err(exec_error(program, err))
}

#[cfg(not(unix))]
fn run_child(
    mut cmd: std::process::Command,
    program: &OsString,
) -> Result<std::process::ExitCode, Error> {
    let status = cmd.status().map_err(|e| exec_error(program, e))?;
    Ok(std::process::ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8,
    ))
}

fn exec_error(program: &OsString, e: std::io::Error) -> Error {
    let name = program.to_string_lossy();
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::usage(
            format!("cannot run {name}: command not found"),
            Some("check the command name and PATH".to_string()),
        )
    } else {
        Error::Other(format!("cannot run {name}: {e}"))
    }
}
