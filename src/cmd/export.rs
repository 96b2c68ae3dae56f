//! `vault export PROFILE --format env|export-env|json|ini`.

use crate::app::App;
use crate::error::Error;
use std::io::Write;
use vault_fast::cli::{ExportArgs, ExportFormat};
use vault_profile::output;

pub fn run(app: &App, args: &ExportArgs) -> Result<(), Error> {
    super::exec::refuse_nesting()?;
    let r = super::credentials_via(
        app,
        &args.profile,
        &args.session,
        super::sso_flow(&args.sso),
    )?;
    let text = match args.format {
        ExportFormat::Json => output::credential_process_json(&r.creds),
        ExportFormat::Env => output::env_lines(&r.creds, r.region.as_deref(), &args.profile, false),
        ExportFormat::ExportEnv => {
            output::env_lines(&r.creds, r.region.as_deref(), &args.profile, true)
        }
        ExportFormat::Ini => output::ini_section(&r.creds, r.region.as_deref(), &args.profile),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // The reader went away (`vault export P | head -1`): nothing to say.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::Other(format!("cannot write to stdout: {e}"))),
    }
}
