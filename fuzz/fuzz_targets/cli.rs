//! Command-line values: durations (`--duration`, `--wait`, and the
//! `VAULT_*_WAIT` / `*_TTL` variables) and PIV slots. A duration that
//! parses can be used the way vault uses it, as a deadline from now.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Instant, SystemTime};
use vault_fast::cli::{parse_duration, parse_slot};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(s) {
        // `hw enroll --wait`, VAULT_TOKEN_WAIT, VAULT_ROTATE_WAIT do this.
        let deadline = Instant::now() + d;
        let _ = deadline;
        let _ = SystemTime::now() + d;
    }
    if let Ok(slot) = parse_slot(s) {
        assert!((0x82..=0x95).contains(&slot));
    }
});
