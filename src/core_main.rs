//! `vault-core`: every command, with the keychain, PC/SC and HID
//! libraries linked. The `vault` binary hands it everything but a cache hit.
#![forbid(unsafe_code)]
use clap::Parser;
use std::process::ExitCode;
use vault::app::App;
use vault::cmd;
use vault::error::Error;
use vault_fast::cli::{Cli, Command, HwCommand};

fn run(cli: Cli) -> Result<ExitCode, Error> {
    // Generated from the clap definitions alone: no store, config or token.
    match &cli.command {
        Command::Completion(a) => return cmd::completion::run(a).map(|()| ExitCode::SUCCESS),
        Command::Man => return cmd::completion::man().map(|()| ExitCode::SUCCESS),
        _ => {}
    }
    let app = App::new(cli.backend.as_deref(), cli.prompt.as_deref())?;
    match &cli.command {
        Command::Add(a) => cmd::add::run(&app, a)?,
        Command::List(a) => cmd::list::run(&app, a)?,
        Command::Remove(a) => cmd::remove::run(&app, a)?,
        Command::Clear(a) => cmd::clear::run(&app, a)?,
        Command::Exec(a) => return cmd::exec::run(&app, a),
        Command::Export(a) => cmd::export::run(&app, a)?,
        Command::Login(a) => cmd::login::run(&app, a)?,
        Command::Rotate(a) => cmd::rotate::run(&app, a)?,
        Command::Hw(HwCommand::Enroll(a)) => cmd::hw_enroll::run(&app, a)?,
        Command::Hw(HwCommand::Status(a)) => cmd::hw_status::run(&app, a)?,
        Command::Sso(vault_fast::cli::SsoCommand::Populate(a)) => cmd::sso_populate::run(&app, a)?,
        Command::Completion(_) | Command::Man => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// For `vault exec PROFILE CMD ARGS…` without `--`: the same line with it,
/// as aws-vault users type it.
fn exec_without_dashes(e: &clap::Error) -> Option<String> {
    if e.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let at = argv.iter().position(|a| a == "exec")?;
    if argv.iter().any(|a| a == "--") {
        return None;
    }
    let rest = &argv[at + 1..];
    let profile = rest.iter().position(|a| !a.starts_with('-'))?;
    let (before, after) = rest.split_at(profile + 1);
    if after.is_empty() {
        return None;
    }
    Some(format!(
        "put `--` before the command: vault exec {} -- {}",
        before.join(" "),
        after.join(" ")
    ))
}

fn main() -> ExitCode {
    vault_base::harden::process();
    // The completion scripts' question (main.rs answers it before this
    // binary starts; here for a vault-core run by hand). Not a clap
    // command, so the scripts do not offer it.
    if std::env::args_os()
        .skip(1)
        .eq([std::ffi::OsString::from(cmd::completion::PROFILES_ARG)])
    {
        return cmd::completion::profiles();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let hint = exec_without_dashes(&e);
            let code = e.exit_code();
            let _ = e.print();
            if let Some(h) = hint {
                eprintln!("vault: hint: {h}");
            }
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    vault::logging::init(cli.debug);
    match run(cli) {
        Ok(code) => code,
        Err(e) => vault::error::report(&e),
    }
}
