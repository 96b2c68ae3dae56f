//! PIV data objects as a YubiKey 5 keeps them: the PIN-protected PRINTED
//! object (5FC109, where ykman and vault keep a PIN-protected management
//! key) is refused before the PIN even when empty, and PUT DATA takes any
//! object id in 5F0000–5FFFFF, not only the standard ones. Runs in the rig:
//! `hw/rig -- cargo test -p virtual-yubikey --test piv_objects`, and on a
//! spare real key (see hw/README.md): `VAULT_RIG_DESTRUCTIVE=1 hw/rig
//! --real-key SERIAL -- cargo test -p virtual-yubikey --test piv_objects --
//! --test-threads=1`.

mod common;

use common::{run, TestKey};
use std::ffi::CString;

const DEFAULT_MGMT: &str = "010203040506070801020304050607080102030405060708";
const PRINTED: [u8; 3] = [0x5F, 0xC1, 0x09];

/// Raw APDUs to the key over pcsc, following 61xx; disconnects without a
/// reset so ykman's runs in between see the same card state as a real
/// key would.
struct Raw {
    card: Option<pcsc::Card>,
}

impl Raw {
    fn connect(key: &TestKey) -> Raw {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
        let reader = CString::new(key.reader.clone()).unwrap();
        let card = ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::T1)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", key.reader));
        let mut raw = Raw { card: Some(card) };
        let (_, sw) = raw.send(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]);
        assert_eq!(sw, 0x9000, "SELECT PIV");
        raw
    }

    fn send(&mut self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let card = self.card.as_ref().unwrap();
        let mut buf = [0u8; 300];
        let mut data = Vec::new();
        let mut apdu = apdu.to_vec();
        loop {
            let resp = card.transmit(&apdu, &mut buf).expect("transmit");
            let (body, sw) = resp.split_at(resp.len() - 2);
            data.extend_from_slice(body);
            let sw = u16::from_be_bytes([sw[0], sw[1]]);
            if sw >> 8 != 0x61 {
                return (data, sw);
            }
            apdu = vec![0x00, 0xC0, 0x00, 0x00, sw as u8];
        }
    }

    fn get_data(&mut self, id: [u8; 3]) -> (Vec<u8>, u16) {
        self.send(&[
            0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, id[0], id[1], id[2], 0x00,
        ])
    }

    fn verify_pin(&mut self) -> u16 {
        let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x08];
        apdu.extend_from_slice(b"123456\xFF\xFF");
        self.send(&apdu).1
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(card) = self.card.take() {
            let _ = card.disconnect(pcsc::Disposition::LeaveCard);
        }
    }
}

fn ok(program: &str, args: &[&str]) -> String {
    let (success, out, err) = run(program, args);
    assert!(success, "{program} {args:?} failed:\n{out}\n{err}");
    out + &err
}

/// A real key answers 6982 to GET DATA of PRINTED before the PIN whether
/// or not it holds anything; only after the PIN does an empty one answer
/// 6A82. ykman relies on it: it reads "PIN required" from 6982 and "no
/// protected data yet" from 6A82 (yubikit `get_pivman_protected_data`).
#[test]
fn printed_object_is_refused_before_the_pin_and_readable_after() {
    let key = TestKey::start();
    let r = key.reader.as_str();
    {
        let mut raw = Raw::connect(&key);
        assert_eq!(raw.get_data(PRINTED).1, 0x6982, "empty, before the PIN");
        assert_eq!(raw.verify_pin(), 0x9000);
        assert_eq!(raw.get_data(PRINTED).1, 0x6A82, "empty, after the PIN");
    }
    // Without a PIN to give, ykman's export stops at the PIN, not at
    // "No data found." (which it says for 6A82).
    let (success, out, err) = run(
        "ykman",
        &["--reader", r, "piv", "objects", "export", "5fc109", "-"],
    );
    assert!(!success, "export without the PIN:\n{out}\n{err}");
    assert!(!err.contains("No data found"), "{err}");
    let (success, _, err) = run(
        "ykman",
        &[
            "--reader", r, "piv", "objects", "export", "--pin", "123456", "5fc109", "-",
        ],
    );
    assert!(!success && err.contains("No data found"), "{err}");

    // ykman stores a PIN-protected management key there...
    ok(
        "ykman",
        &[
            "--reader",
            r,
            "piv",
            "access",
            "change-management-key",
            "-m",
            DEFAULT_MGMT,
            "-P",
            "123456",
            "--generate",
            "--protect",
            "-f",
        ],
    );
    {
        let mut raw = Raw::connect(&key);
        raw.verify_pin();
        let (stored, sw) = raw.get_data(PRINTED);
        assert_eq!(sw, 0x9000);
        // 53 { 88 { 89 key } }
        assert_eq!(
            (stored[0], stored.get(2), stored.get(4)),
            (0x53, Some(&0x88), Some(&0x89))
        );
    }
    // ...which a power cycle locks again behind the PIN.
    let mut key = key;
    key.restart();
    {
        let mut raw = Raw::connect(&key);
        assert_eq!(raw.get_data(PRINTED).1, 0x6982, "stored, before the PIN");
    }
    // ...and which ykman then uses with the PIN alone.
    let info = ok("ykman", &["--reader", &key.reader, "piv", "info"]);
    assert!(
        info.contains("Management key is stored on the YubiKey, protected by PIN"),
        "{info}"
    );
    ok(
        "ykman",
        &[
            "--reader",
            &key.reader,
            "piv",
            "keys",
            "generate",
            "-P",
            "123456",
            "-a",
            "ECCP256",
            "9a",
            "-",
        ],
    );
}

/// `ykman piv objects import 0x5f0001` (Yubico's own device test writes
/// there): an object id outside the standard set, stored and read back
/// byte for byte, then deleted with an empty write.
#[test]
fn put_data_stores_an_object_outside_the_standard_set() {
    let key = TestKey::start();
    let r = key.reader.as_str();
    let data: Vec<u8> = b"Hello, \x00\x1b[31mred\x00\x1b[0m world!"
        .iter()
        .copied()
        .chain((0..=255u8).cycle().take(2000))
        .collect();
    let path = key.dir.join("object.bin");
    std::fs::write(&path, &data).unwrap();
    let file = path.to_str().unwrap();
    ok(
        "ykman",
        &[
            "--reader",
            r,
            "piv",
            "objects",
            "import",
            "-m",
            DEFAULT_MGMT,
            "0x5f0001",
            file,
        ],
    );
    let out_path = key.dir.join("object.out");
    let out_file = out_path.to_str().unwrap();
    ok(
        "ykman",
        &[
            "--reader", r, "piv", "objects", "export", "0x5f0001", out_file,
        ],
    );
    assert_eq!(std::fs::read(&out_path).unwrap(), data);

    // yubico-piv-tool reads the same object (its ids are hex).
    let out = ok(
        "yubico-piv-tool",
        &[
            "-r",
            r,
            "-a",
            "read-object",
            "--id",
            "0x5f0001",
            "-f",
            "binary",
        ],
    );
    assert!(!out.is_empty());

    // The top of the range, with raw APDUs: an empty 53 deletes.
    let mut raw = Raw::connect(&key);
    assert_eq!(raw.get_data([0x5F, 0xFF, 0xFE]).1, 0x6A82);
    drop(raw);
    ok(
        "ykman",
        &[
            "--reader",
            r,
            "piv",
            "objects",
            "import",
            "-m",
            DEFAULT_MGMT,
            "0x5ffffe",
            file,
        ],
    );
    let mut raw = Raw::connect(&key);
    let (got, sw) = raw.get_data([0x5F, 0xFF, 0xFE]);
    assert_eq!(sw, 0x9000);
    assert!(got.ends_with(&data));
}
