//! The OATH applet's answers (SELECT, LIST, VALIDATE, CALCULATE) parse or
//! fail with an error, and the credential name made for any `mfa_serial`
//! fits the applet (1 to 64 bytes) and is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_aws::oath_name::credential_name;
use vault_token::oath::{parse_calculate, parse_list, parse_select, parse_validate, MAX_NAME_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = parse_select(data) {
        let _ = info.version.to_string();
    }
    if let Ok(list) = parse_list(data) {
        for c in list {
            let _ = (c.name, c.oath_type, c.algorithm);
        }
    }
    let _ = parse_validate(data);
    match parse_calculate(data) {
        Ok(code) => {
            let digits = code.expose();
            assert!((6..=8).contains(&digits.len()), "code {digits:?}");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        }
        Err(e) => {
            let _ = (e.to_string(), e.hint());
        }
    }

    let serial = String::from_utf8_lossy(data);
    let name = credential_name(&serial);
    assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN, "{name:?}");
    assert_eq!(name, credential_name(&serial));
});
