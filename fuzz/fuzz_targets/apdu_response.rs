//! The APDU layer against a card that answers anything: the command is
//! chained in short APDUs, `61xx` is followed, and however the card
//! answers (forever `61xx`, answers shorter than a status word, data it
//! was not asked for) vault stops after a bounded number of exchanges.
//!
//! Input: two bytes of command length (data cut from the rest), then the
//! card's answers, each a length byte `n` and `n * 258 / 255` bytes (data
//! and status word: up to 256 + 2). A card that runs out of answers starts over, as a stuck
//! card would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_token::apdu::{split_answer, transmit_with, Apdu, MoreData, TokenError, RECV_BUF};
use zeroize::Zeroizing;

/// Far above what a legitimate answer takes (64 KiB in 256-byte parts).
const MAX_EXCHANGES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let command_len = usize::from(u16::from_be_bytes([*a, *b])) % 1024;
    let (command, mut card) = rest.split_at(command_len.min(rest.len()));
    let mut answers: Vec<&[u8]> = Vec::new();
    while let [n, tail @ ..] = card {
        let n = (usize::from(*n) * RECV_BUF / 255).min(tail.len());
        answers.push(&tail[..n]);
        card = &tail[n..];
    }
    let more = if command_len % 2 == 0 {
        MoreData::GetResponse
    } else {
        MoreData::SendRemaining
    };
    let apdu = Apdu::new("FUZZ", 0xA1, 0, 0).data(Zeroizing::new(command.to_vec()));
    let parts = apdu.encode();
    let mut sent: Vec<u8> = Vec::new();
    for part in &parts {
        assert!(part.len() <= 5 + 255 + 1, "a part longer than a short APDU");
        if part.len() > 5 {
            sent.extend_from_slice(&part[5..5 + usize::from(part[4])]);
        }
    }
    assert_eq!(sent, command, "the parts do not carry the command");

    let mut calls = 0usize;
    let result = transmit_with(&apdu, more, |_raw, buf: &mut [u8; RECV_BUF]| {
        calls += 1;
        assert!(calls <= MAX_EXCHANGES, "the card kept vault reading");
        if answers.is_empty() {
            return Err(TokenError::Removed { serial: None });
        }
        let answer = answers[(calls - 1) % answers.len()];
        let Some((body, sw)) = split_answer(answer) else {
            return Err(TokenError::Malformed {
                op: "FUZZ",
                what: "answer shorter than a status word",
            });
        };
        buf[..body.len()].copy_from_slice(body);
        Ok((body.len(), sw))
    });
    if let Ok(response) = result {
        assert!(response.data.len() <= MAX_EXCHANGES * 256);
        let _ = response.sw.to_string();
    }
});
