//! `vault exec PROFILE [-- CMD ARGS]`, `vault exec PROFILE --json` and
//! `vault exec PROFILE --ecs-server [--lazy] [-- CMD ARGS]`.

use crate::app::App;
use crate::ecs;
use crate::error::Error;
use vault_base::creds::{Credentials, SessionCredentials};
use vault_base::settings::env_var;
use vault_fast::cli::ExecArgs;
use vault_fast::exec::{command_line, deliver, exec_error};
use vault_profile::output;

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
    if args.ecs_server {
        return run_with_ecs_server(app, args);
    }
    let r = super::credentials_via(
        app,
        &args.profile,
        &args.session,
        super::sso_flow(&args.sso),
    )?;
    Ok(deliver(args, &r.creds, r.region.as_deref())?)
}

/// Temporary credentials only: SDKs require a token and an expiry from the
/// container endpoint.
fn session_only(c: Credentials) -> Result<SessionCredentials, Error> {
    match c {
        Credentials::Session(s) => Ok(s),
        Credentials::LongTerm(_) => Err(Error::usage(
            "--ecs-server serves temporary credentials only, and --no-session on a profile that assumes no role gives the stored key itself",
            Some("drop --no-session".to_string()),
        )),
    }
}

/// `--ecs-server`: vault stays beside the command and serves it credentials
/// from a loopback endpoint (see `crate::ecs`), renewing them through the
/// same cache and provider path as every other vault call. The command's
/// exit status is vault's; SIGINT, SIGTERM and SIGHUP sent to vault are
/// passed on to it.
fn run_with_ecs_server(app: &App, args: &ExecArgs) -> Result<std::process::ExitCode, Error> {
    let argv = command_line(args);
    let mut session = args.session.clone();
    // The first session now (so a touch or code is asked before the command
    // starts), or, with --lazy, only a check that the profile can work.
    let (first, region) = if args.lazy {
        let (chain, _) = super::resolve_chain(app, &args.profile)?;
        (
            None,
            vault_profile::plan::region(&chain, &args.session.options()),
        )
    } else {
        let r = super::credentials(app, &args.profile, &session)?;
        (Some(session_only(r.creds)?), r.region)
    };
    if first.is_some() {
        // An MFA code is good once; later sessions ask again.
        session.mfa_token = None;
    }
    let profile = args.profile.clone();
    // Every later session is made while the command owns the terminal:
    // asked through a dialog or a graphical pinentry, touches shown as
    // desktop notifications, never a read of /dev/tty that would take the
    // command's keystrokes.
    let renewals = app.detached();
    let mut refresher = ecs::Refresher::new(App::min_remaining(), move || {
        let r = super::credentials(&renewals, &profile, &session)
            .and_then(|r| session_only(r.creds))
            .map_err(|e| match e.hint() {
                Some(h) => format!("{e} (hint: {h})"),
                None => e.to_string(),
            });
        session.mfa_token = None;
        r
    });
    if let Some(c) = first {
        refresher.seed(c);
    }

    let server = ecs::Server::bind()
        .map_err(|e| Error::Other(format!("cannot start the credential server: {e}")))?;
    let env = output::container_env(
        std::env::vars_os(),
        server.url(),
        server.token(),
        region.as_deref(),
        &args.profile,
    );
    log::debug!(target: "vault", "serving credentials of profile {} at {} to {:?}{}",
        args.profile, server.url(), argv[0], if args.lazy { " (lazily)" } else { "" });
    let (tx, requests) = std::sync::mpsc::channel();
    server
        .start(tx)
        .map_err(|e| Error::Other(format!("cannot start the credential server: {e}")))?;

    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().envs(env);
    #[cfg(unix)]
    let signals = signals::catch()?;
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::from(exec_error(&argv[0], e)))?;
    #[cfg(unix)]
    signals::forward(signals, &child)?;
    // The command's end is vault's, even while this thread waits for a
    // touch or a code: so it is waited for on a thread of its own.
    std::thread::Builder::new()
        .name("child".into())
        .spawn(move || {
            let code = match child.wait() {
                Ok(status) => exit_code(status),
                Err(e) => {
                    eprintln!("vault: cannot wait for the command: {e}");
                    1
                }
            };
            std::process::exit(code)
        })
        .map_err(|e| Error::Other(format!("cannot start a thread: {e}")))?;

    loop {
        match requests.recv() {
            Ok(fetch) => {
                let r = refresher.get().map_err(|e| {
                    eprintln!("vault: cannot serve credentials: {e}");
                    e
                });
                fetch.answer(r);
            }
            // The server never stops; should it, the command still runs.
            Err(_) => std::thread::park(),
        }
    }
}

/// The command's status as an exit code: its own, or 128 + the signal
/// that ended it, as shells report it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return 128 + sig;
        }
    }
    status.code().unwrap_or(1)
}

#[cfg(unix)]
mod signals {
    //! Passing SIGINT, SIGTERM and SIGHUP on to the command while vault
    //! serves it. A signal the kernel sent (the terminal's Ctrl-C or
    //! hang-up, which reaches the whole foreground process group, the
    //! command included) is not sent again: a second Ctrl-C means "force
    //! quit" to some programs (Terraform).
    use crate::error::Error;
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::exfiltrator::origin::WithOrigin;
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::low_level::siginfo::Cause;

    pub struct Caught(SignalsInfo<WithOrigin>);

    /// From now on these signals no longer end vault; they are queued.
    pub fn catch() -> Result<Caught, Error> {
        SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP])
            .map(Caught)
            .map_err(|e| Error::Other(format!("cannot catch signals: {e}")))
    }

    pub fn forward(caught: Caught, child: &std::process::Child) -> Result<(), Error> {
        let pid = rustix::process::Pid::from_child(child);
        let mut signals = caught.0;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for origin in signals.forever() {
                    if matches!(origin.cause, Cause::Kernel) {
                        continue;
                    }
                    if let Some(sig) = rustix::process::Signal::from_named_raw(origin.signal) {
                        log::debug!(target: "vault", "passing signal {} on to the command", origin.signal);
                        let _ = rustix::process::kill_process(pid, sig);
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| Error::Other(format!("cannot start a thread: {e}")))
    }
}
