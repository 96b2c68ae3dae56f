//! BER-TLV as the applets answer it: `parse` consumes the input exactly or
//! fails; each value re-encodes to a TLV that parses back to itself; the
//! Management applet's DeviceInfo and status words never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_token::apdu::{parse_device_info, tlv, Sw};

fuzz_target!(|data: &[u8]| {
    match tlv::parse(data) {
        Ok(tlvs) => {
            // The same walk, one TLV at a time, ends exactly at the end.
            let mut rest = data;
            for expected in &tlvs {
                let (one, after) = tlv::parse_one(rest).expect("parse accepted it");
                assert_eq!(&one, expected);
                assert!(after.len() < rest.len(), "a TLV consumed nothing");
                rest = after;
            }
            assert!(rest.is_empty(), "parse left bytes unread");
            for t in &tlvs {
                let encoded = tlv::encode(t.tag, t.value);
                let (again, rest) = tlv::parse_one(&encoded).expect("re-encoded TLV parses");
                assert_eq!(again, *t);
                assert!(rest.is_empty());
                assert!(encoded.len() <= data.len() || t.value.is_empty());
            }
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
    let _ = parse_device_info(data);
    if let [a, b, ..] = *data {
        let code = u16::from_be_bytes([a, b]);
        let sw = Sw::from_u16(code);
        assert_eq!(sw.code(), code);
        let _ = sw.to_string();
    }
});
