//! Command-line definition. Every command gets its own file under `cmd/`
//! as it arrives; this file only declares the surface.
use clap::Parser;

/// AWS credentials from a hardware token: IAM keys wrapped by a YubiKey PIV
/// slot, MFA codes from its OATH applet, short-lived STS sessions for every
/// process.
#[derive(Debug, Parser)]
#[command(name = "vault", version, about, long_about = None)]
pub struct Cli {}
