//! `virtual-yubikey`: run a software YubiKey 5 in vpcd, or control a running one.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use virtual_yubikey::attest::TestRoot;
use virtual_yubikey::card::{Card, DeviceState};
use virtual_yubikey::control::Controls;
use virtual_yubikey::log::ApduLog;
use virtual_yubikey::server;

#[derive(Parser)]
#[command(
    name = "virtual-yubikey",
    version,
    about = "A software YubiKey 5 for vault's test rig"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Plug a key into vpcd and serve it until killed.
    Run {
        /// State file: created as a factory-fresh key if missing, updated after every change.
        #[arg(long)]
        state: PathBuf,
        /// Serial number of a newly created key (ignored when the state file exists).
        #[arg(long, default_value_t = 12_345_678)]
        serial: u32,
        /// Firmware personality of a newly created key: 5.4.3 or 5.7.4 (ignored
        /// when the state file exists; the key keeps the firmware it was made with).
        #[arg(long, default_value = "5.4.3", value_parser = virtual_yubikey::card::parse_firmware)]
        firmware: [u8; 3],
        /// A new 5.7.4 key enforces PIN complexity, as keys so ordered do
        /// (DEVICE INFO reports it; weak PINs and PUKs answer 6985).
        #[arg(long)]
        pin_complexity: bool,
        /// Folder of the per-installation attestation test root (created if missing).
        #[arg(long, env = "VAULT_RIG_ROOT_DIR")]
        root_dir: PathBuf,
        /// vpcd address: the reader "NAME 00 00" of a vpcd entry listens on its CHANNELID port.
        #[arg(long, default_value = "127.0.0.1:35963")]
        vpcd: String,
        /// Control socket (touch mode, remove/insert); see hw/README.md.
        #[arg(long)]
        control: Option<PathBuf>,
        /// APDU log, one JSON object per line; never holds data bytes.
        #[arg(long)]
        log: Option<PathBuf>,
        /// How long the key waits for a touch before answering 6982 (a YubiKey 5 waits 15 s).
        #[arg(long, default_value_t = 15_000)]
        touch_timeout_ms: u64,
    },
    /// Send one command to a running key: touch now|never|after MS, touch-timeout MS,
    /// remove, insert, remove-on INS, relay-generate, status.
    Ctl {
        #[arg(long, env = "VAULT_RIG_VYK_CONTROL")]
        control: PathBuf,
        #[arg(required = true, trailing_var_arg = true)]
        words: Vec<String>,
    },
    /// Wait until pcscd sees a card in READER (or, with --absent, none).
    Wait {
        #[arg(long, env = "VAULT_RIG_READER")]
        reader: String,
        #[arg(long)]
        absent: bool,
        #[arg(long, default_value_t = 15_000)]
        timeout_ms: u64,
    },
    /// Print the attestation test root certificate (PEM), creating it if missing.
    ExportRoot {
        #[arg(long, env = "VAULT_RIG_ROOT_DIR")]
        root_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("virtual-yubikey: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<(), String> {
    match Cli::parse().cmd {
        Cmd::Run {
            state,
            serial,
            firmware,
            pin_complexity,
            root_dir,
            vpcd,
            control,
            log,
            touch_timeout_ms,
        } => {
            let device = if state.exists() {
                DeviceState::load(&state).map_err(|e| format!("cannot load state: {e}"))?
            } else {
                let [old_root, new_pki] = load_roots(&root_dir)?;
                // 5.7.4 keys are issued under the 5.7 chain's PIV CA, older
                // ones directly by the test root, as Yubico's are.
                let issuer = if firmware >= [5, 7, 0] {
                    &new_pki
                } else {
                    &old_root
                };
                if pin_complexity && firmware < [5, 7, 0] {
                    return Err("--pin-complexity needs --firmware 5.7.4".into());
                }
                let mut device = DeviceState::factory_with_firmware(serial, firmware, issuer);
                device.pin_complexity = pin_complexity;
                device
                    .save(&state)
                    .map_err(|e| format!("cannot write {}: {e}", state.display()))?;
                device
            };
            let controls = Controls::new(Duration::from_millis(touch_timeout_ms));
            if let Some(path) = &control {
                server::serve_control(path, controls.clone())
                    .map_err(|e| format!("control socket {}: {e}", path.display()))?;
            }
            let log = match &log {
                Some(p) => ApduLog::open(p).map_err(|e| format!("log {}: {e}", p.display()))?,
                None => ApduLog::disabled(),
            };
            let card = Card::new(device, Some(state), controls, log);
            server::run(card, &vpcd).map_err(|e| e.to_string())
        }
        Cmd::Ctl { control, words } => {
            let answer = server::send_control(&control, &words.join(" "))
                .map_err(|e| format!("control socket {}: {e}", control.display()))?;
            println!("{answer}");
            if answer.starts_with("ok") {
                Ok(())
            } else {
                Err("command refused".into())
            }
        }
        Cmd::Wait {
            reader,
            absent,
            timeout_ms,
        } => virtual_yubikey::pcsc_wait::wait_card(
            &reader,
            !absent,
            Duration::from_millis(timeout_ms),
        ),
        Cmd::ExportRoot { root_dir } => {
            let [root, _] = load_roots(&root_dir)?;
            print!("{}", root.cert_pem());
            Ok(())
        }
    }
}

/// The 5.4.3 test root and the 5.7 chain's issuing CA (PIV B 1), both
/// created in `dir` when missing, so every file a verifier needs is there
/// whichever personality starts first.
fn load_roots(dir: &std::path::Path) -> Result<[TestRoot; 2], String> {
    let err = |e: std::io::Error| format!("attestation root in {}: {e}", dir.display());
    let old = TestRoot::load_or_create(dir).map_err(err)?;
    let [_, _, piv] = TestRoot::load_or_create_5_7(dir).map_err(err)?;
    Ok([old, piv])
}
