//! `vault-core`: every command, with the keychain, PC/SC and HID
//! libraries linked. The `vault` binary hands it everything but a cache hit.
#![forbid(unsafe_code)]
use clap::Parser;
use std::process::ExitCode;
use vault::app::App;
use vault::cli::{Cli, Command, HwCommand};
use vault::cmd;
use vault::error::Error;

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
        Command::Completion(_) | Command::Man => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    vault::harden::process();
    let cli = Cli::parse();
    vault::logging::init(cli.debug);
    match run(cli) {
        Ok(code) => code,
        Err(e) => vault::error::report(&e),
    }
}
