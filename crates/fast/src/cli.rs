//! The command line: clap definitions only. Each command's logic lives in
//! its own file under the `vault` crate's `cmd/`.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;

/// AWS credentials from a hardware token: IAM keys wrapped by a YubiKey PIV
/// slot, MFA codes from its OATH applet, short-lived STS sessions for every
/// process.
#[derive(Debug, Parser)]
// The product's words, not this crate's description (clap's `about` alone
// would take the crate's); the version is the workspace's.
#[command(
    name = "vault",
    version,
    about = "AWS credential broker: IAM keys wrapped by a YubiKey PIV slot, MFA from its OATH applet, short-lived STS sessions",
    long_about = None
)]
pub struct Cli {
    /// Log which credential path was taken and why (to stderr; never secrets).
    #[arg(long, global = true)]
    pub debug: bool,

    /// Where long-term keys are stored: keychain (Secret Service, macOS
    /// Keychain, Windows Credential Manager), keyutils (Linux kernel keyring,
    /// memory only) or file (encrypted, for headless machines).
    #[arg(long, global = true, env = "VAULT_BACKEND", value_name = "BACKEND")]
    pub backend: Option<String>,

    /// How to ask for MFA codes and secrets: auto, terminal, zenity, kdialog, osascript.
    #[arg(long, global = true, env = "VAULT_PROMPT", value_name = "DRIVER")]
    pub prompt: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a profile's long-term IAM access key.
    Add(AddArgs),
    /// Show profiles, which have stored keys, and cached sessions.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Delete a profile's stored key (and its cached sessions).
    #[command(visible_alias = "rm")]
    Remove(RemoveArgs),
    /// Delete cached sessions (all, or a profile's).
    Clear(ClearArgs),
    /// Run a command with a profile's temporary credentials in its environment,
    /// or print them for credential_process with --json.
    Exec(ExecArgs),
    /// Print a profile's temporary credentials in a chosen format.
    Export(ExportArgs),
    /// Open the AWS console signed in as a profile (or print the sign-in URL).
    Login(LoginArgs),
    /// Replace a profile's IAM access key with a new one: create it, store
    /// it, prove it works, then delete the old one (one MFA code in all).
    Rotate(RotateArgs),
    /// Hardware tokens: put a YubiKey into service, show what is enrolled.
    #[command(subcommand)]
    Hw(HwCommand),
    /// IAM Identity Center: write a profile for every account and role.
    #[command(subcommand)]
    Sso(SsoCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completion(CompletionArgs),
    /// Print vault's manual page (roff) to stdout: `vault man > ~/.local/share/man/man1/vault.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum SsoCommand {
    /// Sign in to an sso-session and write a profile for every account and
    /// role it can use (ACCOUNT_NAME.ROLE_NAME), leaving every profile vault
    /// did not write alone.
    Populate(PopulateArgs),
}

#[derive(Debug, Args)]
pub struct PopulateArgs {
    /// The `[sso-session NAME]` of ~/.aws/config to sign in with.
    pub session: String,
    /// The region the written profiles use (default: none written).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Print what would be written, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub sso: SsoArgs,
}

#[derive(Debug, Subcommand)]
pub enum HwCommand {
    /// Put a YubiKey into service: secure its PIN, PUK and management key,
    /// generate a P-256 key on it, and optionally wrap a profile's key with
    /// it and load the profile's MFA seed into its OATH applet.
    Enroll(EnrollArgs),
    /// Keys present, enrolled slots and policies, PIN tries left, and the
    /// profiles and OATH credentials that use them.
    Status(StatusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TouchArg {
    /// A touch for every unwrap.
    Always,
    /// A touch is good for 15 seconds.
    Cached,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The key's serial number (needed when several are plugged in; vault waits for it).
    #[arg(long, value_name = "SERIAL")]
    pub serial: Option<u32>,
    /// PIV slot for the key, 82–95 (default: the first free retired slot).
    #[arg(long, value_name = "SLOT", value_parser = parse_slot)]
    pub slot: Option<u8>,
    /// Touch policy of the generated key.
    #[arg(long, value_enum, default_value_t = TouchArg::Always)]
    pub touch: TouchArg,
    /// Move this profile's long-term key from the store into an envelope
    /// wrapped by the key (after proving it unwraps).
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Keep the store's clear copy of the profile's key as a fallback for
    /// when the YubiKey is not present (used after a warning).
    #[arg(long, requires = "profile")]
    pub keep_keychain_copy: bool,
    /// `-`: read the base32 TOTP seed of the profile's AWS virtual MFA
    /// device from stdin (one line) and load it into the OATH applet as a
    /// touch-required credential. A seed given here on the command line is
    /// refused: every process and the shell history could read it.
    #[arg(
        long,
        value_name = "-",
        conflicts_with_all = ["totp_uri", "totp_secret_file"]
    )]
    pub totp_secret: Option<String>,
    /// The base32 seed from a file instead of the command line.
    #[arg(long, value_name = "PATH", conflicts_with = "totp_uri")]
    pub totp_secret_file: Option<std::path::PathBuf>,
    /// `-`: read the seed as an otpauth://totp/... URI from stdin instead.
    #[arg(long, value_name = "-")]
    pub totp_uri: Option<String>,
    /// The MFA device ARN the seed belongs to (default: the profile's mfa_serial;
    /// recorded in the profile when it has none).
    #[arg(long, value_name = "ARN")]
    pub mfa_serial: Option<String>,
    /// Create the profile's IAM virtual MFA device (named after its IAM
    /// user), load its seed straight into the OATH applet (touch required)
    /// and enable it with two consecutive codes from the key: no code typed,
    /// the seed never shown or stored elsewhere. Records mfa_serial in the
    /// profile.
    #[arg(
        long,
        requires = "profile",
        conflicts_with_all = ["totp_secret", "totp_secret_file", "totp_uri", "mfa_serial", "fido2"]
    )]
    pub create_mfa_device: bool,
    /// Enroll this key as a backup: another recipient of every envelope.
    #[arg(long)]
    pub backup: bool,
    /// Wrap with a FIDO2 security key's hmac-secret instead of a PIV slot.
    #[arg(long, conflicts_with_all = ["slot", "totp_secret", "totp_secret_file", "totp_uri"])]
    pub fido2: bool,
    /// How long to wait for the key to be inserted.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub wait: std::time::Duration,
    /// Accept a key whose attestation cannot be verified (e.g. a key whose
    /// attestation CA is not known to vault). Not recommended.
    #[arg(long)]
    pub skip_attestation: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A PIV retired slot: `82`, `0x82`, … `95`.
pub fn parse_slot(s: &str) -> Result<u8, String> {
    let hex = s.trim().trim_start_matches("0x").trim_start_matches("0X");
    let v = u8::from_str_radix(hex, 16)
        .map_err(|_| format!("invalid slot {s:?}: expected 82 to 95 (hex)"))?;
    if (0x82..=0x95).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "slot {s} is not a retired slot: use 82 to 95 (hex)"
        ))
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Profile name (as in ~/.aws/config).
    pub profile: String,
    /// Take the key from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead of asking.
    #[arg(long)]
    pub env: bool,
    /// Replace a key the profile already has without asking.
    #[arg(long, short)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only profile names.
    #[arg(long, conflicts_with_all = ["credentials", "sessions"])]
    pub profiles: bool,
    /// Only profiles with stored keys.
    #[arg(long, conflicts_with = "sessions")]
    pub credentials: bool,
    /// Only cached sessions.
    #[arg(long)]
    pub sessions: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    pub profile: String,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Only this profile's sessions.
    pub profile: Option<String>,
    /// Do not ask for confirmation when the sessions of a token-backed
    /// profile would go.
    #[arg(long, short)]
    pub force: bool,
}

/// Options shared by everything that produces credentials.
#[derive(Debug, Args, Clone)]
pub struct SessionArgs {
    /// Session duration (e.g. 1h, 45m, 3600s): every role's, and the MFA
    /// session's of a profile without role. Defaults: roles 1h (or
    /// AWS_ASSUME_ROLE_TTL, or duration_seconds), the MFA session 12h.
    #[arg(long, short, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Use the stored long-term key for roles (or directly) without a
    /// GetSessionToken session.
    #[arg(long, short = 'n')]
    pub no_session: bool,
    /// Region for the credentials (overrides the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// An MFA code to use instead of asking for one.
    #[arg(long, short = 't', value_name = "CODE")]
    pub mfa_token: Option<String>,
}

impl SessionArgs {
    /// What the plan of a profile takes from these options.
    pub fn options(&self) -> vault_profile::plan::SessionOptions {
        vault_profile::plan::SessionOptions {
            duration: self.duration,
            no_session: self.no_session,
            region: self.region.clone(),
            mfa_token: self.mfa_token.clone(),
        }
    }
}

/// How an SSO profile signs in.
#[derive(Debug, Args, Clone, Default)]
pub struct SsoArgs {
    /// SSO profiles: sign in with a code shown here and confirmed in any
    /// browser (device authorization), instead of the browser coming back
    /// to this machine.
    #[arg(long)]
    pub use_device_code: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Profile name (default: $AWS_PROFILE).
    #[arg(env = "AWS_PROFILE")]
    pub profile: String,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub sso: SsoArgs,
    /// Print credential_process JSON on stdout instead of running a command.
    #[arg(long, short = 'j', conflicts_with = "command")]
    pub json: bool,
    /// Serve credentials to the command from a local ECS credential endpoint
    /// (renewed before they expire) instead of putting them in its environment.
    #[arg(long, conflicts_with = "json")]
    pub ecs_server: bool,
    /// With --ecs-server: make no session until the command first asks.
    #[arg(long, requires = "ecs_server")]
    pub lazy: bool,
    /// The command and its arguments (default: $SHELL).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// KEY=value lines
    Env,
    /// export KEY=value lines, for eval
    ExportEnv,
    /// the credential_process JSON object
    Json,
    /// an ~/.aws/credentials section
    Ini,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Profile name (default: $AWS_PROFILE).
    #[arg(env = "AWS_PROFILE")]
    pub profile: String,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub sso: SsoArgs,
    #[arg(long, value_enum, default_value_t = ExportFormat::Env)]
    pub format: ExportFormat,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The profile whose stored key is replaced (the root of its chain).
    pub profile: String,
    /// Call IAM with the stored key itself instead of an MFA session.
    #[arg(long, short = 'n')]
    pub no_session: bool,
    /// An MFA code to use instead of asking for one.
    #[arg(long, short = 't', value_name = "CODE")]
    pub mfa_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Profile name (default: $AWS_PROFILE).
    #[arg(env = "AWS_PROFILE")]
    pub profile: String,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub sso: SsoArgs,
    /// The console page to open, e.g. `s3` or `ec2/home` (default: the console home).
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Print the sign-in URL on stdout instead of opening a browser.
    #[arg(long, short = 's')]
    pub stdout: bool,
}

pub use vault_base::settings::{parse_duration, MAX_DURATION};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
