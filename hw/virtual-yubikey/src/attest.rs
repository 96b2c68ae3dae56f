//! The per-installation attestation test root, and the certificates the
//! key's attestation key (slot F9) issues. Filled in with the PIV applet.

use std::path::Path;

/// A test CA that certifies the attestation key of every virtual key made
/// with it. Never trusted by vault unless a test configures it explicitly.
pub struct TestRoot {
    pub key_der: Vec<u8>,
    pub cert_der: Vec<u8>,
}

impl TestRoot {
    pub fn load_or_create(_dir: &Path) -> std::io::Result<TestRoot> {
        Ok(TestRoot {
            key_der: Vec::new(),
            cert_der: Vec::new(),
        })
    }
}

impl TestRoot {
    pub fn cert_pem(&self) -> String {
        String::new()
    }
}
