//! The APDU log: one JSON object per line, appended as each exchange ends.
//!
//! It records headers, lengths, status words, durations and touches, never
//! command or response data, so PINs, keys and codes cannot leak into it.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Serialize)]
pub struct ApduEntry<'a> {
    pub ts_ms: u128,
    pub kind: &'static str,
    pub applet: &'a str,
    pub cla: String,
    pub ins: String,
    pub p1: String,
    pub p2: String,
    pub lc: usize,
    pub sw: String,
    pub resp_len: usize,
    pub ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub touch: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct EventEntry<'a> {
    ts_ms: u128,
    kind: &'static str,
    event: &'a str,
}

pub struct ApduLog {
    file: Option<File>,
}

pub fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl ApduLog {
    pub fn disabled() -> ApduLog {
        ApduLog { file: None }
    }

    pub fn open(path: &Path) -> std::io::Result<ApduLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ApduLog { file: Some(file) })
    }

    pub fn apdu(&mut self, entry: &ApduEntry<'_>) {
        self.write(entry);
    }

    /// Power, reset, removal and insertion, so a test can line APDUs up with them.
    pub fn event(&mut self, event: &str) {
        self.write(&EventEntry {
            ts_ms: now_ms(),
            kind: "event",
            event,
        });
    }

    fn write<T: Serialize>(&mut self, entry: &T) {
        if let Some(f) = self.file.as_mut() {
            if let Ok(mut line) = serde_json::to_vec(entry) {
                line.push(b'\n');
                // One write per line so concurrent readers never see half a line.
                let _ = f.write_all(&line);
            }
        }
    }
}
