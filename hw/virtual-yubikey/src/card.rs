//! The card: ISO 7816 behaviour shared by every applet (SELECT, command
//! chaining, `61xx` + GET RESPONSE, power and reset), the APDU log, and the
//! persistent state file.

use crate::apdu::{sw, Command, Reply};
use crate::control::{Controls, TouchOutcome};
use crate::log::{now_ms, ApduEntry, ApduLog};
use crate::{mgmt, oath, piv};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The YubiKey 5 ATR, offering T=1 (the yubikey crate connects with T=1 only).
pub const ATR: &[u8] = &[
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];

/// Firmware reported by every applet of the default personality. 5.4.x
/// keeps 3DES as the default management key algorithm, as the yubikey
/// crate expects.
pub const FIRMWARE: [u8; 3] = [5, 4, 3];

/// The second personality: a YubiKey 5 sold today (AES-192 default
/// management key, MOVE and DELETE KEY, 64 OATH credentials).
pub const FIRMWARE_5_7_4: [u8; 3] = [5, 7, 4];

/// The personalities `virtual-yubikey run --firmware` accepts.
pub const PERSONALITIES: [[u8; 3]; 2] = [FIRMWARE, FIRMWARE_5_7_4];

/// Parses `--firmware` (`5.4.3` or `5.7.4`); any other version is refused,
/// since only these two behaviours are emulated.
pub fn parse_firmware(text: &str) -> Result<[u8; 3], String> {
    PERSONALITIES
        .into_iter()
        .find(|v| format!("{}.{}.{}", v[0], v[1], v[2]) == text)
        .ok_or_else(|| format!("firmware {text:?} is not emulated: use 5.4.3 or 5.7.4"))
}

/// Everything that survives a restart of the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceState {
    pub serial: u32,
    pub version: [u8; 3],
    pub piv: piv::Piv,
    pub oath: oath::Oath,
    /// Enabled applications and the config lock (absent in older files).
    #[serde(default)]
    pub mgmt: mgmt::Management,
    /// PIN complexity, a factory option of 5.7 keys (`run --pin-complexity`):
    /// DEVICE INFO says so and PIV refuses weak PINs and PUKs.
    #[serde(default)]
    pub pin_complexity: bool,
}

impl DeviceState {
    /// A key as it leaves the factory. The attestation key is created here
    /// and certified by `root`, the per-installation test root.
    pub fn factory(serial: u32, root: &crate::attest::TestRoot) -> DeviceState {
        DeviceState::factory_with_firmware(serial, FIRMWARE, root)
    }

    /// A factory-fresh key of the personality `version` (one of `PERSONALITIES`).
    pub fn factory_with_firmware(
        serial: u32,
        version: [u8; 3],
        root: &crate::attest::TestRoot,
    ) -> DeviceState {
        DeviceState {
            serial,
            version,
            piv: piv::Piv::factory(serial, version, root),
            oath: oath::Oath::factory(),
            mgmt: mgmt::Management::default(),
            pin_complexity: false,
        }
    }

    pub fn load(path: &Path) -> std::io::Result<DeviceState> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Writes through a temporary file and a rename, so a kill mid-write
    /// never leaves a half-written state behind.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }
}

/// What an applet may use besides its own state while handling a command.
pub struct Env<'a> {
    pub serial: u32,
    pub version: [u8; 3],
    /// Whether this key enforces PIN complexity (`DeviceState::pin_complexity`).
    pub pin_complexity: bool,
    controls: &'a Controls,
    touch: Option<TouchOutcome>,
    dirty: bool,
}

impl Env<'_> {
    /// Whether this GENERATE is to be answered with another key (and the
    /// fault used up).
    pub fn take_relay_generate(&mut self) -> bool {
        std::mem::take(&mut self.controls.lock().relay_generate)
    }

    /// Asks for a touch. `Err(6982)` when none came in time, as a real key answers.
    pub fn touch(&mut self) -> Result<(), u16> {
        let outcome = self.controls.wait_touch();
        self.touch = Some(outcome);
        match outcome {
            TouchOutcome::Given => Ok(()),
            TouchOutcome::TimedOut | TouchOutcome::Removed => Err(sw::SECURITY_STATUS),
        }
    }

    /// The persistent state changed and must be written out.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }
}

/// One applet of the key. `select` is called on every SELECT of its AID;
/// `deselect` when another applet is selected or the card loses power, and
/// must forget PIN, password and management-key authentication.
pub trait Applet {
    fn name(&self) -> &'static str;
    /// The full AID; a SELECT naming any prefix of at least 5 bytes picks it.
    fn aid(&self) -> &'static [u8];
    fn select(&mut self, env: &mut Env<'_>) -> Reply;
    fn deselect(&mut self);
    fn process(&mut self, cmd: &Command, env: &mut Env<'_>) -> Reply;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selected {
    Piv,
    Oath,
    Mgmt,
}

pub struct Card {
    pub state: DeviceState,
    selected: Option<Selected>,
    /// Response data not yet fetched with GET RESPONSE / SEND REMAINING.
    pending: Vec<u8>,
    /// Data of a command chain (CLA 0x10) in progress, with its header.
    chain: Option<(u8, u8, u8, Vec<u8>)>,
    controls: Controls,
    log: ApduLog,
    state_path: Option<PathBuf>,
}

impl Card {
    pub fn new(
        state: DeviceState,
        state_path: Option<PathBuf>,
        controls: Controls,
        log: ApduLog,
    ) -> Card {
        Card {
            state,
            selected: None,
            pending: Vec::new(),
            chain: None,
            controls,
            log,
            state_path,
        }
    }

    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    pub fn event(&mut self, event: &str) {
        self.log.event(event);
    }

    /// Power off, power on and reset all end every session on the card.
    pub fn lose_power(&mut self, event: &str) {
        self.deselect();
        self.pending.clear();
        self.chain = None;
        self.log.event(event);
    }

    fn deselect(&mut self) {
        match self.selected.take() {
            Some(Selected::Piv) => self.state.piv.deselect(),
            Some(Selected::Oath) => self.state.oath.deselect(),
            Some(Selected::Mgmt) => self.state.mgmt.deselect(),
            None => {}
        }
    }

    fn applet(&mut self, which: Selected) -> &mut dyn Applet {
        match which {
            Selected::Piv => &mut self.state.piv,
            Selected::Oath => &mut self.state.oath,
            Selected::Mgmt => &mut self.state.mgmt,
        }
    }

    /// Handles one raw APDU and returns the raw response (data ‖ SW).
    /// Returns `None` when the key was pulled out instead of answering.
    pub fn transmit(&mut self, raw: &[u8]) -> Option<Vec<u8>> {
        let started = Instant::now();
        if raw.len() >= 2 {
            let mut ctl = self.controls.lock();
            if ctl.remove_on_ins == Some(raw[1]) {
                ctl.remove_on_ins = None;
                drop(ctl);
                self.controls.remove();
                self.lose_power("removed-on-ins");
                return None;
            }
        }
        let removals_before = self.controls.lock().removals;

        let serial = self.state.serial;
        let version = self.state.version;
        let controls = self.controls.clone();
        let mut env = Env {
            serial,
            version,
            pin_complexity: self.state.pin_complexity,
            controls: &controls,
            touch: None,
            dirty: false,
        };
        let (reply, applet_name, header, lc, extended) = match Command::parse(raw) {
            Err(code) => (
                Reply::sw(code),
                self.applet_name(),
                raw_header(raw),
                0,
                false,
            ),
            Ok(cmd) => {
                let header = [cmd.cla, cmd.ins, cmd.p1, cmd.p2];
                let lc = cmd.data.len();
                let extended = cmd.extended;
                let reply = self.dispatch(cmd, &mut env);
                (reply, self.applet_name(), header, lc, extended)
            }
        };
        let touch = env.touch;
        let dirty = env.dirty;

        let out = self.split_response(reply, extended);
        let sw_bytes = out.len().saturating_sub(2);
        self.log.apdu(&ApduEntry {
            ts_ms: now_ms(),
            kind: "apdu",
            applet: applet_name,
            cla: format!("{:02X}", header[0]),
            ins: format!("{:02X}", header[1]),
            p1: format!("{:02X}", header[2]),
            p2: format!("{:02X}", header[3]),
            lc,
            sw: hex::encode_upper(&out[sw_bytes..]),
            resp_len: sw_bytes,
            ms: started.elapsed().as_millis(),
            touch: touch.map(TouchOutcome::as_str),
        });
        if dirty {
            self.persist();
        }
        if self.controls.lock().removals != removals_before {
            // Pulled out while working (e.g. waiting for a touch): the host
            // never sees an answer.
            self.lose_power("removed-mid-operation");
            return None;
        }
        Some(out)
    }

    fn applet_name(&self) -> &'static str {
        match self.selected {
            Some(Selected::Piv) => "piv",
            Some(Selected::Oath) => "oath",
            Some(Selected::Mgmt) => "mgmt",
            None => "none",
        }
    }

    fn persist(&mut self) {
        if let Some(path) = &self.state_path {
            if let Err(e) = self.state.save(path) {
                eprintln!(
                    "virtual-yubikey: cannot save state to {}: {e}",
                    path.display()
                );
            }
        }
    }

    fn dispatch(&mut self, mut cmd: Command, env: &mut Env<'_>) -> Reply {
        let continuation =
            cmd.ins == 0xC0 || (cmd.ins == 0xA5 && self.selected == Some(Selected::Oath));
        if continuation && !self.pending.is_empty() {
            let take = self.pending.len();
            let data: Vec<u8> = self.pending.drain(..take).collect();
            return Reply::ok(data);
        }
        self.pending.clear();

        if cmd.is_chained() {
            match &mut self.chain {
                Some((ins, p1, p2, buf)) if (*ins, *p1, *p2) == (cmd.ins, cmd.p1, cmd.p2) => {
                    buf.extend_from_slice(&cmd.data)
                }
                _ => self.chain = Some((cmd.ins, cmd.p1, cmd.p2, cmd.data.clone())),
            }
            return Reply::empty();
        }
        if let Some((ins, p1, p2, mut buf)) = self.chain.take() {
            if (ins, p1, p2) == (cmd.ins, cmd.p1, cmd.p2) {
                buf.extend_from_slice(&cmd.data);
                cmd.data = buf;
            }
            // A different command abandons the chain, as a real card does.
        }

        if cmd.cla & !0x10 != 0 {
            return Reply::sw(sw::CLA_NOT_SUPPORTED);
        }
        if cmd.ins == 0xA4 && cmd.p1 == 0x04 {
            return self.select(&cmd, env);
        }
        match self.selected {
            Some(which) => self.applet(which).process(&cmd, env),
            None => Reply::sw(sw::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, cmd: &Command, env: &mut Env<'_>) -> Reply {
        let candidates = [Selected::Piv, Selected::Oath, Selected::Mgmt];
        let found = candidates.into_iter().find(|&c| {
            let aid = self.applet(c).aid();
            cmd.data.len() >= 5 && aid.starts_with(&cmd.data)
        });
        // A disabled application is not found, as on a real key.
        let found = found.filter(|&c| {
            let name = self.applet(c).name();
            self.state.mgmt.enabled(name)
        });
        let Some(which) = found else {
            return Reply::sw(sw::FILE_NOT_FOUND);
        };
        if self.selected != Some(which) {
            self.deselect();
        }
        self.selected = Some(which);
        self.applet(which).select(env)
    }

    /// Long answers go out 256 bytes at a time with `61xx`, unless the
    /// command was extended-length (then the client takes it all at once).
    fn split_response(&mut self, reply: Reply, extended: bool) -> Vec<u8> {
        let Reply { mut data, sw } = reply;
        if !extended && data.len() > 256 {
            self.pending = data.split_off(256);
        }
        let sw = if !self.pending.is_empty() && sw == sw::OK {
            sw::MORE_DATA | self.pending.len().min(0xFF) as u16
        } else {
            sw
        };
        // The pending buffer was split off by the applet call that just
        // returned it; when it is drained by GET RESPONSE it is re-split here.
        data.extend_from_slice(&sw.to_be_bytes());
        data
    }
}

fn raw_header(raw: &[u8]) -> [u8; 4] {
    let mut h = [0u8; 4];
    for (i, b) in raw.iter().take(4).enumerate() {
        h[i] = *b;
    }
    h
}

impl vpicc::VSmartCard for Card {
    fn atr(&self) -> &[u8] {
        ATR
    }
    fn power_on(&mut self) {
        self.lose_power("power-on");
    }
    fn power_off(&mut self) {
        self.lose_power("power-off");
    }
    fn reset(&mut self) {
        self.lose_power("reset");
    }
    fn execute(&mut self, msg: &[u8]) -> Vec<u8> {
        // When the key was pulled mid-command the stream is already shut
        // down; whatever is returned here is never delivered.
        self.transmit(msg).unwrap_or_default()
    }
}
