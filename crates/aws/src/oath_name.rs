//! The OATH credential name vault gives an AWS MFA device on a YubiKey.
//!
//! It lives on the AWS side because it reads an IAM ARN; the token crate
//! stores and computes credentials by whatever name it is given.

use sha2::{Digest, Sha256};
use vault_token::oath::MAX_NAME_LEN;

/// The OATH credential name vault uses for an AWS MFA device.
///
/// `arn:<partition>:iam::<account>:mfa/<device>` becomes
/// `<partition>:<device>@<account>`, e.g. `aws:alice@123456789012`; ykman
/// and Yubico Authenticator show `aws` as the issuer and `alice@123456789012`
/// as the account. A device path stays part of the name (`mfa/team/alice`
/// → `aws:team/alice@…`). Anything that is not such an ARN (a hardware MFA
/// serial, say) becomes `aws:<serial>`.
///
/// The applet stores at most 64 bytes. A longer name keeps its issuer and
/// account and shortens the device part, replacing its end with `~` and 8
/// hex digits of SHA-256 of the whole `mfa_serial`: the same serial always
/// gives the same name, and two long ones sharing a prefix do not collide.
pub fn credential_name(mfa_serial: &str) -> String {
    let (issuer, device, account) = match parse_mfa_arn(mfa_serial) {
        Some((partition, account, device)) => (partition, device, Some(account)),
        None => ("aws", mfa_serial, None),
    };
    let at_account = account.map(|a| format!("@{a}")).unwrap_or_default();
    let full = format!("{issuer}:{device}{at_account}");
    if full.len() <= MAX_NAME_LEN {
        return full;
    }
    let hash = hex::encode(&Sha256::digest(mfa_serial.as_bytes())[..4]);
    let suffix = format!("~{hash}{at_account}");
    let room = MAX_NAME_LEN.saturating_sub(issuer.len() + 1 + suffix.len());
    let mut cut = room.min(device.len());
    while !device.is_char_boundary(cut) {
        cut -= 1;
    }
    let name = format!("{issuer}:{}{suffix}", &device[..cut]);
    if name.len() <= MAX_NAME_LEN {
        name
    } else {
        // Only a partition name or account id far longer than AWS uses
        // gets here; the hash alone still names it deterministically.
        format!(
            "aws:~{}",
            hex::encode(&Sha256::digest(mfa_serial.as_bytes())[..8])
        )
    }
}

/// `(partition, account, device)` of `arn:<partition>:iam::<account>:mfa/<device>`.
fn parse_mfa_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let device = resource.strip_prefix("mfa/")?;
    let valid = prefix == "arn"
        && !partition.is_empty()
        && service == "iam"
        && region.is_empty()
        && !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && !device.is_empty();
    valid.then_some((partition, account, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_for_mfa_devices() {
        assert_eq!(
            credential_name("arn:aws:iam::123456789012:mfa/alice"),
            "aws:alice@123456789012"
        );
        assert_eq!(
            credential_name("arn:aws-us-gov:iam::123456789012:mfa/team/bob"),
            "aws-us-gov:team/bob@123456789012"
        );
        assert_eq!(credential_name("GAHT12345678"), "aws:GAHT12345678");
        // Not an MFA device ARN: used whole.
        assert_eq!(
            credential_name("arn:aws:iam::123456789012:user/alice"),
            "aws:arn:aws:iam::123456789012:user/alice"
        );

        let long = format!("arn:aws:iam::123456789012:mfa/{}", "x".repeat(80));
        let name = credential_name(&long);
        assert_eq!(name.len(), MAX_NAME_LEN);
        assert!(name.starts_with("aws:xxxx"), "{name}");
        assert!(name.ends_with("@123456789012"), "{name}");
        assert_eq!(name, credential_name(&long), "deterministic");
        let other = format!("arn:aws:iam::123456789012:mfa/{}y", "x".repeat(80));
        assert_ne!(
            credential_name(&other),
            name,
            "same prefix, different names"
        );
        assert_eq!(credential_name(&other).len(), MAX_NAME_LEN);

        // Multi-byte characters are never split.
        let wide = format!("arn:aws:iam::123456789012:mfa/{}", "é".repeat(40));
        assert!(credential_name(&wide).len() <= MAX_NAME_LEN);
        let junk = "ü".repeat(100);
        assert!(credential_name(&junk).len() <= MAX_NAME_LEN);
        let huge = format!("arn:{}:iam::1:mfa/a", "p".repeat(100));
        assert!(credential_name(&huge).len() <= MAX_NAME_LEN);
    }
}
