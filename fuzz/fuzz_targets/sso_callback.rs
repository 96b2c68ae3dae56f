//! The SSO sign-in's loopback listener: any request head (any local
//! process can connect) is judged without a panic, and only a
//! `GET /oauth/callback` carrying this sign-in's state and a code is taken
//! as the answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_aws::sso::{judge_callback, Callback};

const STATE: &str = "fuzz-state";

fuzz_target!(|data: &[u8]| {
    match judge_callback(data, STATE) {
        Callback::Code(code) => {
            assert!(data.starts_with(b"GET /oauth/callback?"));
            assert!(!code.is_empty());
        }
        Callback::Denied | Callback::Refused(_) => {
            assert!(data.starts_with(b"GET /oauth/callback"));
        }
        Callback::NotOurs => {}
    }
});
