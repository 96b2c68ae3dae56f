//! PIV attestation paths: from a slot's attestation certificate, through
//! the card's F9 attestation certificate and any number of intermediate
//! CAs, to a trusted root.
//!
//! Yubico runs two PIV attestation PKIs (<https://developers.yubico.com/PKI/>,
//! "Yubico PKI"; <https://developers.yubico.com/PIV/Introduction/PIV_attestation.html>):
//!
//! - firmware before 5.7.4: slot → F9 (`Yubico PIV Attestation`) →
//!   `Yubico PIV Root CA Serial 263751`
//!   (<https://developers.yubico.com/PIV/Introduction/piv-attestation-ca.pem>);
//! - firmware 5.7.4 and later (Yubico's 2024-12 PKI): slot → F9 →
//!   `Yubico PIV Attestation {A,B} 1` → `Yubico Attestation Intermediate
//!   {A,B} 1` → `Yubico Attestation Root 1`
//!   (<https://developers.yubico.com/PKI/yubico-ca-1.pem>).
//!
//! A key stores only its F9 certificate; the CAs above it are published by
//! Yubico, the roots in <https://developers.yubico.com/PKI/yubico-ca-certs.txt>
//! and the intermediates (PIV's beside FIDO's, OpenPGP's, ...) in
//! <https://developers.yubico.com/PKI/yubico-intermediate.pem>. A verifier
//! therefore embeds them, as smallstep's `kms/yubikey` does for the same PIV
//! intermediates, and takes the newer ones Yubico may issue from files:
//! `VAULT_ATTESTATION_INTERMEDIATES` adds intermediates (never trusted on
//! their own: only a path to a root makes them count), and
//! `VAULT_ATTESTATION_ROOTS` adds roots.
//!
//! Every issuer on the path must be a CA (basicConstraints cA), allow the
//! number of CAs below it (pathLenConstraint), allow certificate signing when
//! it carries a keyUsage, and be inside its validity window. The slot's
//! certificate itself is not held to a window: Yubico's carry the F9's
//! open-ended one and only state the key and its policies.

use crate::piv::PivError;
use der::{Decode, DecodePem, Encode};
use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

/// Extra attestation roots, `path.pem[:path2.pem]`.
pub const ATTESTATION_ROOTS_VAR: &str = "VAULT_ATTESTATION_ROOTS";
/// Extra intermediate CAs, `path.pem[:path2.pem]`: candidates for a path,
/// never trust anchors.
pub const ATTESTATION_INTERMEDIATES_VAR: &str = "VAULT_ATTESTATION_INTERMEDIATES";

/// Where Yubico publishes its intermediates, for messages.
pub const YUBICO_INTERMEDIATES_URL: &str =
    "https://developers.yubico.com/PKI/yubico-intermediate.pem";

/// The most CA certificates a path may hold above the slot's certificate
/// (F9 included). Yubico's longest is 4 (F9, PIV, Intermediate, Root 1).
const MAX_CAS: usize = 6;

/// "Yubico PIV Root CA Serial 263751", which certifies the F9 attestation
/// key of every YubiKey with firmware before 5.7.4. Published by Yubico at
/// <https://developers.yubico.com/PIV/Introduction/piv-attestation-ca.pem>
/// (also in <https://developers.yubico.com/PKI/yubico-ca-certs.txt>); this
/// copy is the 2018 re-issue (pathlen 1), which kept the original key, so
/// it verifies F9 certificates issued under either. SHA-256 fingerprint
/// 63:EC:E9:14:E5:4D:D8:79:15:F3:40:33:C8:5A:F4:C0:69:6B:A1:51:2F:8A:DD:66:CE:D7:38:33:12:07:B5:46;
/// a unit test checks its self-signature, so a damaged copy cannot pass.
pub const YUBICO_PIV_ROOT_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDFzCCAf+gAwIBAgIDBAZHMA0GCSqGSIb3DQEBCwUAMCsxKTAnBgNVBAMMIFl1
YmljbyBQSVYgUm9vdCBDQSBTZXJpYWwgMjYzNzUxMCAXDTE2MDMxNDAwMDAwMFoY
DzIwNTIwNDE3MDAwMDAwWjArMSkwJwYDVQQDDCBZdWJpY28gUElWIFJvb3QgQ0Eg
U2VyaWFsIDI2Mzc1MTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAMN2
cMTNR6YCdcTFRxuPy31PabRn5m6pJ+nSE0HRWpoaM8fc8wHC+Tmb98jmNvhWNE2E
ilU85uYKfEFP9d6Q2GmytqBnxZsAa3KqZiCCx2LwQ4iYEOb1llgotVr/whEpdVOq
joU0P5e1j1y7OfwOvky/+AXIN/9Xp0VFlYRk2tQ9GcdYKDmqU+db9iKwpAzid4oH
BVLIhmD3pvkWaRA2H3DA9t7H/HNq5v3OiO1jyLZeKqZoMbPObrxqDg+9fOdShzgf
wCqgT3XVmTeiwvBSTctyi9mHQfYd2DwkaqxRnLbNVyK9zl+DzjSGp9IhVPiVtGet
X02dxhQnGS7K6BO0Qe8CAwEAAaNCMEAwHQYDVR0OBBYEFMpfyvLEojGc6SJf8ez0
1d8Cv4O/MA8GA1UdEwQIMAYBAf8CAQEwDgYDVR0PAQH/BAQDAgEGMA0GCSqGSIb3
DQEBCwUAA4IBAQBc7Ih8Bc1fkC+FyN1fhjWioBCMr3vjneh7MLbA6kSoyWF70N3s
XhbXvT4eRh0hvxqvMZNjPU/VlRn6gLVtoEikDLrYFXN6Hh6Wmyy1GTnspnOvMvz2
lLKuym9KYdYLDgnj3BeAvzIhVzzYSeU77/Cupofj093OuAswW0jYvXsGTyix6B3d
bW5yWvyS9zNXaqGaUmP3U9/b6DlHdDogMLu3VLpBB9bm5bjaKWWJYgWltCVgUbFq
Fqyi4+JE014cSgR57Jcu3dZiehB6UtAPgad9L5cNvua/IWRmm+ANy3O2LH++Pyl8
SREzU8onbBsjMg9QDiSf5oJLKvd/Ren+zGY7
-----END CERTIFICATE-----
";

/// "Yubico Attestation Root 1" (2024-12-01, RSA-2048, self-signed with
/// SHA-512, pathlen 3), the root of every attestation of firmware 5.7.4
/// and later. Published at <https://developers.yubico.com/PKI/yubico-ca-1.pem>
/// and in <https://developers.yubico.com/PKI/yubico-ca-certs.txt>. SHA-256
/// 62:76:0C:6A:6E:F9:16:79:F4:54:C8:90:2B:80:FD:00:98:25:B3:F2:5D:A9:0F:1F:BA:CE:2E:C6:58:6C:D5:A8.
pub const YUBICO_ATTESTATION_ROOT_1_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDPjCCAiagAwIBAgIUXzeiEDJEOTt14F5n0o6Zf/bBwiUwDQYJKoZIhvcNAQEN
BQAwJDEiMCAGA1UEAwwZWXViaWNvIEF0dGVzdGF0aW9uIFJvb3QgMTAgFw0yNDEy
MDEwMDAwMDBaGA85OTk5MTIzMTIzNTk1OVowJDEiMCAGA1UEAwwZWXViaWNvIEF0
dGVzdGF0aW9uIFJvb3QgMTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEB
AMZ6/TxM8rIT+EaoPvG81ontMOo/2mQ2RBwJHS0QZcxVaNXvl12LUhBZ5LmiBScI
Zd1Rnx1od585h+/dhK7hEm7JAALkKKts1fO53KGNLZujz5h3wGncr4hyKF0G74b/
U3K9hE5mGND6zqYchCRAHfrYMYRDF4YL0X4D5nGdxvppAy6nkEmtWmMnwO3i0TAu
csrbE485HvGM4r0VpgVdJpvgQjiTJCTIq+D35hwtT8QDIv+nGvpcyi5wcIfCkzyC
imJukhYy6KoqNMKQEdpNiSOvWyDMTMt1bwCvEzpw91u+msUt4rj0efnO9s0ZOwdw
MRDnH4xgUl5ZLwrrPkfC1/0CAwEAAaNmMGQwHQYDVR0OBBYEFNLu71oijTptXCOX
PfKF1SbxJXuSMB8GA1UdIwQYMBaAFNLu71oijTptXCOXPfKF1SbxJXuSMBIGA1Ud
EwEB/wQIMAYBAf8CAQMwDgYDVR0PAQH/BAQDAgGGMA0GCSqGSIb3DQEBDQUAA4IB
AQC3IW/sgB9pZ8apJNjxuGoX+FkILks0wMNrdXL/coUvsrhzsvl6mePMrbGJByJ1
XnquB5sgcRENFxdQFma3mio8Upf1owM1ZreXrJ0mADG2BplqbJnxiyYa+R11reIF
TWeIhMNcZKsDZrFAyPuFjCWSQvJmNWe9mFRYFgNhXJKkXIb5H1XgEDlwiedYRM7V
olBNlld6pRFKlX8ust6OTMOeADl2xNF0m1LThSdeuXvDyC1g9+ILfz3S6OIYgc3i
roRcFD354g7rKfu67qFAw9gC4yi0xBTPrY95rh4/HqaUYCA/L8ldRk6H7Xk35D+W
Vpmq2Sh/xT5HiFuhf4wJb0bK
-----END CERTIFICATE-----
";

/// "Yubico Attestation Intermediate A 1", issued by Root 1 (pathlen 2).
/// From <https://developers.yubico.com/PKI/yubico-intermediate.pem>. SHA-256
/// 46:98:A1:D3:38:9C:3E:C6:00:16:C2:16:25:0F:1D:04:39:92:28:32:D6:51:42:32:74:36:37:6D:C2:94:2B:55.
pub const YUBICO_ATTESTATION_INTERMEDIATE_A_1_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDSDCCAjCgAwIBAgIUUcmMXzRIFOgGTK0Tb3gEuZYZkBIwDQYJKoZIhvcNAQEL
BQAwJDEiMCAGA1UEAwwZWXViaWNvIEF0dGVzdGF0aW9uIFJvb3QgMTAgFw0yNDEy
MDEwMDAwMDBaGA85OTk5MTIzMTIzNTk1OVowLjEsMCoGA1UEAwwjWXViaWNvIEF0
dGVzdGF0aW9uIEludGVybWVkaWF0ZSBBIDEwggEiMA0GCSqGSIb3DQEBAQUAA4IB
DwAwggEKAoIBAQDm555bWY9WW+tOY0rIWHldh+aNanoCZCFh7Gk3YZrQmPUw0hkS
G6qYHQtP+fZyS33VErvg+BQqnmumgNhfxFrkwEZELeidBcC8C4Ag4nqqiPWpzsvI
17NcxYlInLNLFcZY/+gOiN6ZOTihO5/vBZMbj9riaAcqliYmNGJPgTcMGaEAyMzE
MNy2nm6Ep+pjP5aF6gi21t/UQFsuJ1j2Rj/ynM/SdRt+ecal5OYotxHkFbL9vvv2
A2Ov5ITZClw4bOS9npypQimOZ5QAYytmYaQpWl/pMYz6zSj8RqkVDNEJGqNfTKA2
ivLYwX6lSttMPapg0J84l9X0voVN/FpS4VCVAgMBAAGjZjBkMB0GA1UdDgQWBBQg
KFAhG6RaW+hTy52dxeT8bC96HzAfBgNVHSMEGDAWgBTS7u9aIo06bVwjlz3yhdUm
8SV7kjASBgNVHRMBAf8ECDAGAQH/AgECMA4GA1UdDwEB/wQEAwIBhjANBgkqhkiG
9w0BAQsFAAOCAQEAYMzgLrJLIr0OovQnAZrRIGuabiHSUKSmbLRWpRkWeAtsChDE
HpXcJ/bgDNKYWoHqQ8xRUjB4CyepYevc3YlrG8o7zHxpfVcaoL5SeuJkzHxKn4bT
aSp9+Mvwamnp64kZMiNbFLknfP9kYKoRHkMWheRJ1UsP1z4ScmkCeILfsMs6vqov
qjWClFsJpBcsluYHWF7bBJ1n4Rwg+ATEopY4IgGv6Zvwc+A9r+AT2hqpoSkYoAl+
ANYwgslOf9sJe0V+TA9YY/UlaBmPPTd0//r9wvcePWZkPjKoAC/zUNhfDbh4LV8G
Hs3lyX2XomL/LNc8JYzyIaDEhGQveoPhh/tr1g==
-----END CERTIFICATE-----
";

/// "Yubico Attestation Intermediate B 1", issued by Root 1 (pathlen 2).
/// From <https://developers.yubico.com/PKI/yubico-intermediate.pem>. SHA-256
/// D4:CC:3F:45:6F:DA:F4:E7:81:2A:21:AA:B1:DF:E9:D8:E2:7D:24:E2:FD:2D:6F:21:C9:94:01:09:F0:DA:A7:54.
pub const YUBICO_ATTESTATION_INTERMEDIATE_B_1_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDSDCCAjCgAwIBAgIUDqERw+4RnGSggxgUewJFEPDRZ3YwDQYJKoZIhvcNAQEL
BQAwJDEiMCAGA1UEAwwZWXViaWNvIEF0dGVzdGF0aW9uIFJvb3QgMTAgFw0yNDEy
MDEwMDAwMDBaGA85OTk5MTIzMTIzNTk1OVowLjEsMCoGA1UEAwwjWXViaWNvIEF0
dGVzdGF0aW9uIEludGVybWVkaWF0ZSBCIDEwggEiMA0GCSqGSIb3DQEBAQUAA4IB
DwAwggEKAoIBAQDI7XnH+ZvDwMCQU8M8ZeV5qscublvVYaaRt3Ybaxn9godLx5sw
H0lXrdgjh5h7FpVgCgYYX7E4bl1vbzULemrMWT8N3WMGUe8QAJbBeioV7W/E+hTZ
P/0SKJVa3ewKBo6ULeMnfQZDrVORAk8wTLq2v5Llj5vMj7JtOotKa9J7nHS8kLmz
XXSaj0SwEPh5OAZUTNV4zs1bvoTAQQWrL4/J9QuKt6WCFE5nUNiRQcEbVF8mlqK2
bx2z6okVltyDVLCxYbpUTELvY1usR3DTGPUoIClOm4crpwnDRLVHvjYePGBB//pE
yzxA/gcScxjwaH1ZUw9bnSbHyurKqbTa1KvjAgMBAAGjZjBkMB0GA1UdDgQWBBTq
t0KQngx7ZHrbVHwDunxOn9ihYTAfBgNVHSMEGDAWgBTS7u9aIo06bVwjlz3yhdUm
8SV7kjASBgNVHRMBAf8ECDAGAQH/AgECMA4GA1UdDwEB/wQEAwIBhjANBgkqhkiG
9w0BAQsFAAOCAQEAqQaCWMxTGqVVX7Sk7kkJmUueTSYKuU6+KBBSgwIRnlw9K7He
1IpxZ0hdwpPNikKjmcyFgFPzhImwHJgxxuT90Pw3vYOdcJJNktDg35PXOfzSn15c
FAx1RO0mPTmIb8dXiEWOpzoXvdwXDM41ZaCDYMT7w4IQtMyvE7xUBZq2bjtAnq/N
DUA7be4H8H3ipC+/+NKlUrcUh+j48K67WI0u1m6FeQueBA7n06j825rqDqsaLs9T
b7KAHAw8PmrWaNPG2kjKerxPEfecivlFawp2RWZvxrVtn3TV2SBxyCJCkXsND05d
CErVHSJIs+BdtTVNY9AwtyPmnyb0v4mSTzvWdw==
-----END CERTIFICATE-----
";

/// "Yubico PIV Attestation A 1", issued by Intermediate A 1 (pathlen 1);
/// issues F9 certificates. From
/// <https://developers.yubico.com/PKI/yubico-intermediate.pem>. SHA-256
/// 6D:E6:93:F0:53:76:F5:D8:CA:29:06:92:61:E1:C8:62:6C:75:D5:03:BD:2E:DB:FD:75:35:4C:AD:1F:72:28:70.
pub const YUBICO_PIV_ATTESTATION_A_1_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDSTCCAjGgAwIBAgIUSiefkiKiicP9B63XwO7fKqevCkQwDQYJKoZIhvcNAQEL
BQAwLjEsMCoGA1UEAwwjWXViaWNvIEF0dGVzdGF0aW9uIEludGVybWVkaWF0ZSBB
IDEwIBcNMjQxMjAxMDAwMDAwWhgPOTk5OTEyMzEyMzU5NTlaMCUxIzAhBgNVBAMM
Gll1YmljbyBQSVYgQXR0ZXN0YXRpb24gQSAxMIIBIjANBgkqhkiG9w0BAQEFAAOC
AQ8AMIIBCgKCAQEAyGCyrZjNrdPfChdDe4JWd+4TMLr8nbugcKJz12egglWi7oy5
L9GT99/if9i1OrONdpEt0YrCa+qMb+dJJ0WUa8M5zXYnUDpn72vhFjH+Anb9P9+v
+ZrRqaj/jnR/MYP7NpVpeLHiH2dRCe/PX/NH1XE41GvdUEncDtqUUGaXUea0DfDY
McRDpPT2Qn5e8rn9FjzDA37SbOVuws5VlFTDzDdqR0FnqeWeIW0DFu17rzCqXcaB
VRDnQLTc5EEPDTpiRrQE/Ag+7Wg9ieLrueos75YMQ1EIkfjL49OBVogU1A7kwRGv
OnG8l7sYaY8LZ2b5FROe2hKqmsIy600qjn6b/QIDAQABo2YwZDAdBgNVHQ4EFgQU
hAuLXXtpQVBkcsbqyFlj6LVAadgwHwYDVR0jBBgwFoAUIChQIRukWlvoU8udncXk
/Gwveh8wEgYDVR0TAQH/BAgwBgEB/wIBATAOBgNVHQ8BAf8EBAMCAYYwDQYJKoZI
hvcNAQELBQADggEBAFxL/2oFjxkLh2KVnFKdhy7Nf7MmEfYXDDFSx1rFDn445jHO
UP5kxQPbZc9r53jdvL5W0SQBqBjqA95PYh0r1CPMFsFJdiFXli8Hf3NQ0bTkeFSN
G3LsQCOKMb+o2WjYU3vHkRVjKgKGLxysxxKxGfMUcXdJ0qM6ZVeRHehC2zy7XuI6
TQn7/V0ZHXjk7So7dUV55xQde094/3cCTnh9Q3j2aqMjkGx6tDboCsz/+W+tne7W
nMHG92ZiAAmOkP2bABjan461Qty/qBXPHomkfjqNbjUTluPXiMLYKCXHIyKwdkX6
cphouSMU3QOTsb35Y2PeWNk54xu+Eds/3nhRMso=
-----END CERTIFICATE-----
";

/// "Yubico PIV Attestation B 1", issued by Intermediate B 1 (pathlen 1);
/// issues F9 certificates. From
/// <https://developers.yubico.com/PKI/yubico-intermediate.pem>. SHA-256
/// 2D:55:B7:99:8F:4E:42:56:9D:6D:8F:A3:82:B6:DC:77:D1:DA:CF:07:35:8B:19:70:11:63:89:29:22:B1:70:52.
///
/// Yubico's bundle also lists "Yubico PIV Attestation B2 1" (SHA-256
/// 0C:90:B7:D1:84:A3:6E:DF:50:A3:5F:9B:E9:35:F0:C5:68:9B:FD:CF:E5:BD:D0:73:36:6C:AF:B4:90:61:A4:40
/// as other verifiers pin it). Its bytes were not in any source at hand
/// when this was written, so it is not embedded: a key whose F9 it issued
/// needs `yubico-intermediate.pem` in `VAULT_ATTESTATION_INTERMEDIATES`,
/// and the error says so.
pub const YUBICO_PIV_ATTESTATION_B_1_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIDSTCCAjGgAwIBAgIUWVf2oJG+t1qP8t8TicWgJ2KYan4wDQYJKoZIhvcNAQEL
BQAwLjEsMCoGA1UEAwwjWXViaWNvIEF0dGVzdGF0aW9uIEludGVybWVkaWF0ZSBC
IDEwIBcNMjQxMjAxMDAwMDAwWhgPOTk5OTEyMzEyMzU5NTlaMCUxIzAhBgNVBAMM
Gll1YmljbyBQSVYgQXR0ZXN0YXRpb24gQiAxMIIBIjANBgkqhkiG9w0BAQEFAAOC
AQ8AMIIBCgKCAQEAv7WBL9/5AKxSpCMoL63183WqRtFrOHY7tdyuGtoidoYWQrxV
aV9S+ZwH0aynh0IzD5A/PvCtuxdtL5w2cAI3tgsborOlEert4IZ904CZQfq3ooar
1an/wssbtMpPOQkC3MQiqrUyHlFS2BTbuwbBXY66lSVX/tGRuUgnBdfBJtcQKS6M
O4bU5ndPQqhGPyzcyY1LvlfzK7KJ1r/bixCRFqjhJRnPs0Czpg6rkRrFgC6cd5bK
1UgTsJy+3wrIqkv4CeV3EhSVnhnQjZgIrdIcI5WZ8T1Oq3OhMlWmY0K0dy/oZdP/
bpbG2qbyHLa6gprLT/qChQWLmffxn6D2DAB1zQIDAQABo2YwZDAdBgNVHQ4EFgQU
M0Nt3QHo7eGzaKMZn2SmXT74vpcwHwYDVR0jBBgwFoAU6rdCkJ4Me2R621R8A7p8
Tp/YoWEwEgYDVR0TAQH/BAgwBgEB/wIBATAOBgNVHQ8BAf8EBAMCAYYwDQYJKoZI
hvcNAQELBQADggEBAI0HwoS84fKMUyIof1LdUXvyeAMmEwW7+nVETvxNNlTMuwv7
zPJ4XZAm9Fv95tz9CqZBj6l1PAPQn6Zht9LQA92OF7W7buuXuxuusBTgLM0C1iX2
CGXqY/k/uSNvi3ZYfrpd44TIrfrr8bCG9ux7B5ZCRqb8adDUm92Yz3lK1aX2M6Cw
jC9IZVTXQWhLyP8Ys3p7rb20CO2jJzV94deJ/+AsEb+bnCQImPat1GDKwrBosar+
BxtU7k6kgkxZ0G384O59GFXqnwkbw2b5HhORvOsX7nhOUhePFufzi1vT1g8Tzbwr
+TUfTwo2biKHHcI762KGtp8o6Bcv5y8WgExFuWY=
-----END CERTIFICATE-----
";

/// The embedded roots.
const YUBICO_ROOTS: [&str; 2] = [YUBICO_PIV_ROOT_CA_PEM, YUBICO_ATTESTATION_ROOT_1_PEM];
/// The embedded intermediates.
const YUBICO_INTERMEDIATES: [&str; 4] = [
    YUBICO_ATTESTATION_INTERMEDIATE_A_1_PEM,
    YUBICO_ATTESTATION_INTERMEDIATE_B_1_PEM,
    YUBICO_PIV_ATTESTATION_A_1_PEM,
    YUBICO_PIV_ATTESTATION_B_1_PEM,
];

const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";

// ------------------------------------------------------------------ paths

/// Why no path reached a trusted root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing trusted or known is named as `cert`'s issuer.
    #[error(
        "no trusted root or known intermediate CA is {issuer} (the issuer of {cert}): \
         if it is Yubico's, put Yubico's intermediates ({YUBICO_INTERMEDIATES_URL}) in \
         {ATTESTATION_INTERMEDIATES_VAR}; if it is a root, trust it in {ATTESTATION_ROOTS_VAR}"
    )]
    MissingIssuer { cert: String, issuer: String },
    /// A certificate of that name is known but cannot issue `cert`.
    #[error("{issuer} cannot be the issuer of {cert}: {reason}")]
    BadIssuer {
        cert: String,
        issuer: String,
        reason: String,
    },
    #[error("the path from {cert} holds more than {MAX_CAS} CA certificates")]
    TooLong { cert: String },
}

/// A path from the F9 certificate to a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPath {
    /// Subjects of the CA certificates, F9 first, the root last.
    pub subjects: Vec<String>,
}

impl VerifiedPath {
    /// The subject of the root the path ends in.
    pub fn root(&self) -> &str {
        self.subjects.last().map(String::as_str).unwrap_or_default()
    }
}

/// The roots an attestation may chain to and the intermediates a path may
/// go through: Yubico's, plus files named in `VAULT_ATTESTATION_ROOTS`
/// and `VAULT_ATTESTATION_INTERMEDIATES`. Nothing else, and nothing from
/// the system's certificate store.
#[derive(Clone)]
pub struct TrustedRoots {
    pub(crate) roots: Vec<Certificate>,
    pub(crate) intermediates: Vec<Certificate>,
}

impl fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[Certificate]| {
            v.iter()
                .map(|c| c.tbs_certificate.subject.to_string())
                .collect::<Vec<_>>()
        };
        f.debug_struct("TrustedRoots")
            .field("roots", &names(&self.roots))
            .field("intermediates", &names(&self.intermediates))
            .finish()
    }
}

fn embedded(pems: &[&str]) -> Vec<Certificate> {
    pems.iter()
        .filter_map(|p| Certificate::from_pem(p.as_bytes()).ok())
        .collect()
}

impl TrustedRoots {
    /// Only Yubico's roots and intermediates.
    pub fn yubico() -> TrustedRoots {
        TrustedRoots {
            roots: embedded(&YUBICO_ROOTS),
            intermediates: embedded(&YUBICO_INTERMEDIATES),
        }
    }

    /// Yubico's, plus those in `VAULT_ATTESTATION_ROOTS` and
    /// `VAULT_ATTESTATION_INTERMEDIATES`.
    pub fn from_env() -> Result<TrustedRoots, PivError> {
        let mut t = TrustedRoots::from_var(std::env::var_os(ATTESTATION_ROOTS_VAR).as_deref())?;
        t.add_intermediates(std::env::var_os(ATTESTATION_INTERMEDIATES_VAR).as_deref())?;
        Ok(t)
    }

    /// Yubico's, plus the roots in `value`, a `:`-separated list of PEM
    /// files as `VAULT_ATTESTATION_ROOTS` holds it. Every file must hold at
    /// least one certificate: a typo must not quietly shrink the trusted set.
    pub fn from_var(value: Option<&OsStr>) -> Result<TrustedRoots, PivError> {
        let mut t = TrustedRoots::yubico();
        for path in paths(value) {
            let certs = read_pem_file(path)?;
            t.roots.extend(certs);
        }
        Ok(t)
    }

    /// Adds the intermediates in `value` (as `VAULT_ATTESTATION_INTERMEDIATES`
    /// holds them): candidates for a path, never anchors.
    pub fn add_intermediates(&mut self, value: Option<&OsStr>) -> Result<(), PivError> {
        for path in paths(value) {
            let certs = read_pem_file(path)?;
            self.intermediates.extend(certs);
        }
        Ok(())
    }

    /// Verifies that `leaf` is signed by `f9` and that `f9` chains to a
    /// trusted root.
    pub fn verify(
        &self,
        leaf: &Certificate,
        f9: &Certificate,
        now: SystemTime,
    ) -> Result<VerifiedPath, String> {
        verify_signed_by(leaf, f9)
            .map_err(|e| format!("not signed by the card's attestation key: {e}"))?;
        check_issuer(f9, 0, now)
            .map_err(|e| format!("the card's attestation certificate cannot certify a key: {e}"))?;
        self.path_from(f9, now).map_err(|e| {
            format!("the card's attestation key is not certified by a trusted root: {e}")
        })
    }

    /// A path from `f9` (the card's attestation certificate) to a trusted
    /// root, through any of the known intermediates.
    pub fn path_from(&self, f9: &Certificate, now: SystemTime) -> Result<VerifiedPath, PathError> {
        let mut path = vec![f9];
        self.extend(&mut path, now)?;
        Ok(VerifiedPath {
            subjects: path
                .iter()
                .map(|c| c.tbs_certificate.subject.to_string())
                .collect(),
        })
    }

    /// Depth first: a root that issued the path's last certificate ends
    /// it; otherwise each intermediate that did is tried in turn. An
    /// intermediate already on the path is a loop and is skipped.
    fn extend<'a>(
        &'a self,
        path: &mut Vec<&'a Certificate>,
        now: SystemTime,
    ) -> Result<(), PathError> {
        let Some(&cert) = path.last() else {
            return Ok(());
        };
        let name = cert.tbs_certificate.subject.to_string();
        if path.len() > MAX_CAS {
            return Err(PathError::TooLong { cert: name });
        }
        let wanted = &cert.tbs_certificate.issuer;
        // The CAs below the issuer: the whole path so far.
        let below = path.len();
        let mut last = None;
        let bad = |issuer: &Certificate, reason: String| PathError::BadIssuer {
            cert: name.clone(),
            issuer: issuer.tbs_certificate.subject.to_string(),
            reason,
        };
        for root in self
            .roots
            .iter()
            .filter(|r| r.tbs_certificate.subject == *wanted)
        {
            match verify_signed_by(cert, root).and_then(|()| check_issuer(root, below, now)) {
                Ok(()) => {
                    path.push(root);
                    return Ok(());
                }
                Err(e) => last = Some(bad(root, e)),
            }
        }
        for ca in self
            .intermediates
            .iter()
            .filter(|c| c.tbs_certificate.subject == *wanted)
        {
            if path.contains(&ca) {
                last.get_or_insert_with(|| bad(ca, "it is already on the path (a loop)".into()));
                continue;
            }
            if let Err(e) = verify_signed_by(cert, ca).and_then(|()| check_issuer(ca, below, now)) {
                last = Some(bad(ca, e));
                continue;
            }
            path.push(ca);
            match self.extend(path, now) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    path.pop();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(PathError::MissingIssuer {
            cert: name,
            issuer: wanted.to_string(),
        }))
    }
}

fn paths(value: Option<&OsStr>) -> Vec<PathBuf> {
    value
        .map(|v| {
            std::env::split_paths(v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn read_pem_file(path: PathBuf) -> Result<Vec<Certificate>, PivError> {
    let err = |reason: String| PivError::AttestationRoots {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(&path).map_err(|e| err(e.to_string()))?;
    let certs = Certificate::load_pem_chain(&pem).map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in it".into()));
    }
    Ok(certs)
}

/// What an issuer must be to issue a certificate with `below` CA
/// certificates between it and the slot's: a CA whose path length allows
/// them, whose key usage (when it has one) allows certificate signing, and
/// which is inside its validity window.
fn check_issuer(ca: &Certificate, below: usize, now: SystemTime) -> Result<(), String> {
    let constraints = extension::<BasicConstraints>(ca)?
        .ok_or("it has no basicConstraints, so it is not a CA")?;
    if !constraints.ca {
        return Err("it is not a CA (basicConstraints cA is false)".into());
    }
    if let Some(len) = constraints.path_len_constraint {
        if usize::from(len) < below {
            return Err(format!(
                "its path length constraint ({len}) allows fewer CAs below it than the path has ({below})"
            ));
        }
    }
    if let Some(usage) = extension::<KeyUsage>(ca)? {
        if !usage.key_cert_sign() {
            return Err("its key usage does not include keyCertSign".into());
        }
    }
    let validity = &ca.tbs_certificate.validity;
    if now < validity.not_before.to_system_time() {
        return Err(format!("it is not valid before {}", validity.not_before));
    }
    if now > validity.not_after.to_system_time() {
        return Err(format!("it expired on {}", validity.not_after));
    }
    Ok(())
}

fn extension<'a, T>(cert: &'a Certificate) -> Result<Option<T>, String>
where
    T: der::oid::AssociatedOid + Decode<'a>,
{
    let Some(ext) = cert
        .tbs_certificate
        .extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == T::OID))
    else {
        return Ok(None);
    };
    T::from_der(ext.extn_value.as_bytes())
        .map(Some)
        .map_err(|e| format!("extension {}: {e}", T::OID))
}

/// Checks `cert`'s signature with `issuer`'s key: ECDSA P-256/SHA-256 (the
/// virtual key's attestation chains) or RSA PKCS#1 v1.5 with SHA-256 or
/// SHA-512 (Yubico's; Root 1 signs itself with SHA-512).
pub(crate) fn verify_signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(format!(
            "issued by {}, not {}",
            cert.tbs_certificate.issuer, issuer.tbs_certificate.subject
        ));
    }
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or("the signature is not a whole number of bytes")?;
    let issuer_spki = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let rsa_key = || {
        use rsa::pkcs8::DecodePublicKey;
        rsa::RsaPublicKey::from_public_key_der(&issuer_spki)
            .map_err(|_| "the issuer's key is not RSA".to_string())
    };
    let bad = |_| "bad signature".to_string();
    match cert.signature_algorithm.oid.to_string().as_str() {
        OID_ECDSA_SHA256 => {
            use p256::pkcs8::DecodePublicKey;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&issuer_spki)
                .map_err(|_| "the issuer's key is not P-256".to_string())?;
            let sig = p256::ecdsa::DerSignature::try_from(sig).map_err(|e| e.to_string())?;
            key.verify(&tbs, &sig).map_err(bad)
        }
        OID_RSA_SHA256 => {
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(rsa_key()?);
            let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
            key.verify(&tbs, &sig).map_err(bad)
        }
        OID_RSA_SHA512 => {
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(rsa_key()?);
            let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
            key.verify(&tbs, &sig).map_err(bad)
        }
        other => Err(format!("unsupported signature algorithm {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use std::time::Duration;
    use x509_cert::builder::{Builder, CertificateBuilder, Profile};
    use x509_cert::name::Name;

    fn cert(pem: &str) -> Certificate {
        Certificate::from_pem(pem.as_bytes()).unwrap()
    }

    fn sha256_hex(c: &Certificate) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(c.to_der().unwrap()))
    }

    #[test]
    fn embedded_certificates_are_yubicos_published_ones() {
        let root_1 = cert(YUBICO_ATTESTATION_ROOT_1_PEM);
        let legacy = cert(YUBICO_PIV_ROOT_CA_PEM);
        let int_a = cert(YUBICO_ATTESTATION_INTERMEDIATE_A_1_PEM);
        let int_b = cert(YUBICO_ATTESTATION_INTERMEDIATE_B_1_PEM);
        let piv_a = cert(YUBICO_PIV_ATTESTATION_A_1_PEM);
        let piv_b = cert(YUBICO_PIV_ATTESTATION_B_1_PEM);
        // (certificate, issuer, subject, SHA-256 as Yubico's users pin it)
        let table = [
            (
                &legacy,
                &legacy,
                "CN=Yubico PIV Root CA Serial 263751",
                "63ece914e54dd87915f34033c85af4c0696ba1512f8add66ced738331207b546",
            ),
            (
                &root_1,
                &root_1,
                "CN=Yubico Attestation Root 1",
                "62760c6a6ef91679f454c8902b80fd009825b3f25da90f1fbace2ec6586cd5a8",
            ),
            (
                &int_a,
                &root_1,
                "CN=Yubico Attestation Intermediate A 1",
                "4698a1d3389c3ec60016c216250f1d0439922832d65142327436376dc2942b55",
            ),
            (
                &int_b,
                &root_1,
                "CN=Yubico Attestation Intermediate B 1",
                "d4cc3f456fdaf4e7812a21aab1dfe9d8e27d24e2fd2d6f21c9940109f0daa754",
            ),
            (
                &piv_a,
                &int_a,
                "CN=Yubico PIV Attestation A 1",
                "6de693f05376f5d8ca29069261e1c8626c75d503bd2edbfd75354cad1f722870",
            ),
            (
                &piv_b,
                &int_b,
                "CN=Yubico PIV Attestation B 1",
                "2d55b7998f4e42569d6d8fa382b6dc77d1dacf07358b19701163892922b17052",
            ),
        ];
        let now = SystemTime::now();
        for (c, issuer, subject, fp) in table {
            assert_eq!(c.tbs_certificate.subject.to_string(), subject);
            assert_eq!(sha256_hex(c), fp, "{subject}");
            // Self-signature for roots, the issuer's for intermediates:
            // a damaged copy fails here.
            verify_signed_by(c, issuer).unwrap_or_else(|e| panic!("{subject}: {e}"));
            check_issuer(c, 1, now).unwrap_or_else(|e| panic!("{subject}: {e}"));
        }
        let t = TrustedRoots::yubico();
        assert_eq!((t.roots.len(), t.intermediates.len()), (2, 4));
        // Each PIV intermediate reaches Root 1 through the embedded set, as
        // a 5.7.4 key's F9 will.
        for piv in [&piv_a, &piv_b] {
            let mut path = vec![piv];
            t.extend(&mut path, now).unwrap();
            assert_eq!(
                path.last().unwrap().tbs_certificate.subject.to_string(),
                "CN=Yubico Attestation Root 1"
            );
            assert_eq!(path.len(), 3);
        }
    }

    #[test]
    fn damaged_copies_do_not_verify() {
        for (pem, issuer) in [
            (YUBICO_PIV_ROOT_CA_PEM, YUBICO_PIV_ROOT_CA_PEM),
            (YUBICO_ATTESTATION_ROOT_1_PEM, YUBICO_ATTESTATION_ROOT_1_PEM),
            (
                YUBICO_PIV_ATTESTATION_B_1_PEM,
                YUBICO_ATTESTATION_INTERMEDIATE_B_1_PEM,
            ),
        ] {
            let mut der = cert(pem).to_der().unwrap();
            // A byte of the public key.
            let n = der.len() / 2;
            der[n] ^= 1;
            let damaged = Certificate::from_der(&der).unwrap();
            let issuer = if pem == issuer {
                damaged.clone()
            } else {
                cert(issuer)
            };
            assert!(verify_signed_by(&damaged, &issuer).is_err());
        }
    }

    #[test]
    fn variables_add_files_and_reject_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("root.pem");
        std::fs::write(&good, YUBICO_PIV_ROOT_CA_PEM).unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();

        assert_eq!(TrustedRoots::from_var(None).unwrap().roots.len(), 2);
        let joined = std::env::join_paths([&good, &good]).unwrap();
        let mut t = TrustedRoots::from_var(Some(&joined)).unwrap();
        assert_eq!(t.roots.len(), 4);
        t.add_intermediates(Some(good.as_os_str())).unwrap();
        assert_eq!(t.intermediates.len(), 5);
        for bad in [empty, dir.path().join("missing.pem")] {
            let err = TrustedRoots::from_var(Some(bad.as_os_str())).unwrap_err();
            assert!(matches!(err, PivError::AttestationRoots { .. }), "{err}");
            assert!(err.hint().unwrap().contains(ATTESTATION_ROOTS_VAR));
            let err = t.add_intermediates(Some(bad.as_os_str())).unwrap_err();
            assert!(matches!(err, PivError::AttestationRoots { .. }), "{err}");
        }
    }

    // ---------------------------------------------------- generated chains

    struct Ca {
        key: p256::ecdsa::SigningKey,
        cert: Certificate,
    }

    fn name(cn: &str) -> Name {
        Name::from_str(&format!("CN={cn},O=vault unit test")).unwrap()
    }

    fn validity(days_from: i64, days_to: i64) -> x509_cert::time::Validity {
        let at = |d: i64| {
            let secs = Duration::from_secs(d.unsigned_abs() * 86_400);
            let t = if d < 0 {
                SystemTime::now() - secs
            } else {
                SystemTime::now() + secs
            };
            x509_cert::time::Time::try_from(t).unwrap()
        };
        x509_cert::time::Validity {
            not_before: at(days_from),
            not_after: at(days_to),
        }
    }

    fn spki(key: &p256::ecdsa::SigningKey) -> x509_cert::spki::SubjectPublicKeyInfoOwned {
        use p256::pkcs8::EncodePublicKey;
        let der = key.verifying_key().to_public_key_der().unwrap();
        x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap()
    }

    fn new_key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)
    }

    fn serial() -> x509_cert::serial_number::SerialNumber {
        use rand::RngCore;
        let mut b = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut b);
        b[0] = (b[0] & 0x7F) | 0x40;
        x509_cert::serial_number::SerialNumber::new(&b).unwrap()
    }

    fn root(cn: &str) -> Ca {
        let key = new_key();
        let cert = CertificateBuilder::new(
            Profile::Root,
            serial(),
            validity(-1, 3650),
            name(cn),
            spki(&key),
            &key,
        )
        .unwrap()
        .build::<p256::ecdsa::DerSignature>()
        .unwrap();
        Ca { key, cert }
    }

    impl Ca {
        fn issue(&self, cn: &str, profile_ca: Option<Option<u8>>, window: (i64, i64)) -> Ca {
            self.issue_key(cn, new_key(), profile_ca, window)
        }

        fn issue_key(
            &self,
            cn: &str,
            key: p256::ecdsa::SigningKey,
            profile_ca: Option<Option<u8>>,
            window: (i64, i64),
        ) -> Ca {
            let issuer = self.cert.tbs_certificate.subject.clone();
            let profile = match profile_ca {
                Some(path_len_constraint) => Profile::SubCA {
                    issuer,
                    path_len_constraint,
                },
                None => Profile::Leaf {
                    issuer,
                    enable_key_agreement: false,
                    enable_key_encipherment: false,
                    include_subject_key_identifier: true,
                },
            };
            let cert = CertificateBuilder::new(
                profile,
                serial(),
                validity(window.0, window.1),
                name(cn),
                spki(&key),
                &self.key,
            )
            .unwrap()
            .build::<p256::ecdsa::DerSignature>()
            .unwrap();
            Ca { key, cert }
        }

        fn ca(&self, cn: &str, path_len: Option<u8>) -> Ca {
            self.issue(cn, Some(path_len), (-1, 3650))
        }
    }

    /// root → general (pathlen 2) → piv (pathlen 1) → f9 (pathlen 0) →
    /// slot, Yubico's 2024 shape.
    struct Chain {
        root: Ca,
        general: Ca,
        piv: Ca,
        f9: Ca,
        slot: Ca,
    }

    fn chain() -> Chain {
        let root = root("Root 1");
        let general = root.ca("Intermediate B 1", Some(2));
        let piv = general.ca("PIV Attestation B 1", Some(1));
        let f9 = piv.ca("PIV Attestation", Some(0));
        let slot = f9.issue("PIV Attested Key", None, (-1, 3650));
        Chain {
            root,
            general,
            piv,
            f9,
            slot,
        }
    }

    fn trusting(roots: &[&Ca], intermediates: &[&Ca]) -> TrustedRoots {
        TrustedRoots {
            roots: roots.iter().map(|c| c.cert.clone()).collect(),
            intermediates: intermediates.iter().map(|c| c.cert.clone()).collect(),
        }
    }

    fn verify(t: &TrustedRoots, c: &Chain) -> Result<VerifiedPath, String> {
        t.verify(&c.slot.cert, &c.f9.cert, SystemTime::now())
    }

    #[test]
    fn a_good_chain_verifies_through_its_intermediates_in_any_order() {
        let c = chain();
        let t = trusting(&[&c.root], &[&c.general, &c.piv]);
        let path = verify(&t, &c).unwrap();
        assert_eq!(path.subjects.len(), 4);
        assert_eq!(path.root(), "CN=Root 1,O=vault unit test");
        let t = trusting(&[&c.root], &[&c.piv, &c.general]);
        verify(&t, &c).unwrap();
        // The legacy shape: F9 directly under a root.
        let legacy = root("Legacy root");
        let f9 = legacy.ca("PIV Attestation", Some(0));
        let slot = f9.issue("PIV Attested Key", None, (-1, 3650));
        let t = trusting(&[&legacy], &[]);
        let path = t.verify(&slot.cert, &f9.cert, SystemTime::now()).unwrap();
        assert_eq!(path.subjects.len(), 2);
    }

    #[test]
    fn a_missing_intermediate_is_named_with_what_to_do() {
        let c = chain();
        let t = trusting(&[&c.root], &[&c.general]);
        let err = verify(&t, &c).unwrap_err();
        assert!(err.contains("PIV Attestation B 1"), "{err}");
        assert!(err.contains(ATTESTATION_INTERMEDIATES_VAR), "{err}");
        assert!(err.contains(YUBICO_INTERMEDIATES_URL), "{err}");
        // The root given only as an intermediate is not trusted.
        let t = trusting(&[], &[&c.root, &c.general, &c.piv]);
        let err = verify(&t, &c).unwrap_err();
        assert!(
            err.contains("a loop") || err.contains("no trusted root"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_intermediate_of_the_same_name_is_refused() {
        let c = chain();
        // Same subject, another key: its signature cannot match.
        let impostor = c.general.ca("PIV Attestation B 1", Some(1));
        let other_root = root("Root 1");
        let wrong = other_root.ca("PIV Attestation B 1", Some(1));
        for bad in [&impostor, &wrong] {
            let t = trusting(&[&c.root], &[&c.general, bad]);
            let err = verify(&t, &c).unwrap_err();
            assert!(err.contains("bad signature"), "{err}");
        }
        // With the right one beside it, the path is found.
        let t = trusting(&[&c.root], &[&c.general, &impostor, &c.piv]);
        verify(&t, &c).unwrap();
        // A root of the right name but another key.
        let t = trusting(&[&other_root], &[&c.general, &c.piv]);
        assert!(verify(&t, &c).unwrap_err().contains("bad signature"));
    }

    #[test]
    fn a_non_ca_intermediate_is_refused() {
        let root = root("Root 1");
        let general = root.ca("Intermediate B 1", Some(2));
        let piv = general.issue("PIV Attestation B 1", None, (-1, 3650));
        let f9 = piv.ca("PIV Attestation", Some(0));
        let slot = f9.issue("PIV Attested Key", None, (-1, 3650));
        let t = trusting(&[&root], &[&general, &piv]);
        let err = t
            .verify(&slot.cert, &f9.cert, SystemTime::now())
            .unwrap_err();
        assert!(err.contains("not a CA"), "{err}");
        // Nor an F9 that is not a CA.
        let f9 = piv.issue("PIV Attestation", None, (-1, 3650));
        let slot = f9.issue("PIV Attested Key", None, (-1, 3650));
        let err = t
            .verify(&slot.cert, &f9.cert, SystemTime::now())
            .unwrap_err();
        assert!(err.contains("cannot certify a key"), "{err}");
    }

    #[test]
    fn an_exceeded_path_length_is_refused() {
        let root = root("Root 1");
        let general = root.ca("Intermediate B 1", Some(0));
        let piv = general.ca("PIV Attestation B 1", Some(1));
        let f9 = piv.ca("PIV Attestation", Some(0));
        let slot = f9.issue("PIV Attested Key", None, (-1, 3650));
        let t = trusting(&[&root], &[&general, &piv]);
        let err = t
            .verify(&slot.cert, &f9.cert, SystemTime::now())
            .unwrap_err();
        assert!(err.contains("path length constraint (0)"), "{err}");
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        let c = chain();
        // The slot's certificate signed by another key of the F9's name.
        let other_f9 = c.piv.ca("PIV Attestation", Some(0));
        let t = trusting(&[&c.root], &[&c.general, &c.piv]);
        let err = t
            .verify(&c.slot.cert, &other_f9.cert, SystemTime::now())
            .unwrap_err();
        assert!(
            err.contains("not signed by the card's attestation key"),
            "{err}"
        );
        // A flipped bit in the F9's signature.
        let mut f9 = c.f9.cert.clone();
        let mut sig = f9.signature.raw_bytes().to_vec();
        let last = sig.len() - 1;
        sig[last] ^= 1;
        f9.signature = der::asn1::BitString::from_bytes(&sig).unwrap();
        let err = t.verify(&c.slot.cert, &f9, SystemTime::now()).unwrap_err();
        assert!(err.contains("PIV Attestation B 1"), "{err}");
    }

    #[test]
    fn an_expired_intermediate_is_refused() {
        let root = root("Root 1");
        let general = root.issue("Intermediate B 1", Some(Some(2)), (-30, -1));
        let piv = general.ca("PIV Attestation B 1", Some(1));
        let f9 = piv.ca("PIV Attestation", Some(0));
        let slot = f9.issue("PIV Attested Key", None, (-1, 3650));
        let t = trusting(&[&root], &[&general, &piv]);
        let err = t
            .verify(&slot.cert, &f9.cert, SystemTime::now())
            .unwrap_err();
        assert!(err.contains("expired"), "{err}");
    }

    #[test]
    fn loops_and_overlong_paths_end() {
        // Two CAs that issued each other (A's key certified by B, B's by
        // A), neither under a trusted root.
        let a = root("Loop A");
        let b = a.ca("Loop B", None);
        let a_by_b = b.issue_key("Loop A", a.key.clone(), Some(None), (-1, 3650));
        let f9 = a.ca("PIV Attestation", Some(0));
        let slot = f9.issue("PIV Attested Key", None, (-1, 3650));
        let t = trusting(&[], &[&a_by_b, &b]);
        let err = t
            .verify(&slot.cert, &f9.cert, SystemTime::now())
            .unwrap_err();
        assert!(err.contains("loop"), "{err}");

        // A path of more CAs than MAX_CAS, each pathlen-free.
        let top = root("Top");
        let mut cas = vec![top.ca("Level 0", None)];
        for i in 1..MAX_CAS + 1 {
            let next = cas[i - 1].ca(&format!("Level {i}"), None);
            cas.push(next);
        }
        let f9 = cas.last().unwrap().ca("PIV Attestation", Some(0));
        let slot = f9.issue("PIV Attested Key", None, (-1, 3650));
        let refs: Vec<&Ca> = cas.iter().collect();
        let t = trusting(&[&top], &refs);
        let err = t
            .verify(&slot.cert, &f9.cert, SystemTime::now())
            .unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }
}
