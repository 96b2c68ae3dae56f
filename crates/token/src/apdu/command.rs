//! Commands out, whole answers back (chaining, `61xx`), apart from PC/SC so tests need no card.

use super::{Sw, TokenError};
use zeroize::Zeroizing;

/// 256 data bytes and the status word: the most a short answer carries.
pub const RECV_BUF: usize = 256 + 2;
/// The most data one short command carries; more is chained.
const CHUNK: usize = 255;
/// Bounds a `61xx` chain, so a confused card cannot keep us reading: at
/// most this many bytes, in at most `MAX_FOLLOW_UPS` parts (a card that
/// answers `61xx` with no data would otherwise never be done).
const MAX_RESPONSE: usize = 64 * 1024;
const MAX_FOLLOW_UPS: usize = MAX_RESPONSE / 64;

/// A command APDU. `op` names it in errors and debug logs; the data never
/// appears in either, and is zeroized on drop (it may hold a key).
pub struct Apdu {
    pub op: &'static str,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Zeroizing<Vec<u8>>,
    /// `Some(0)` adds an Le byte of `00` (up to 256 bytes expected), as the
    /// yubikey crate sends `00 FD 00 00 00`.
    pub le: Option<u8>,
}

impl Apdu {
    pub fn new(op: &'static str, ins: u8, p1: u8, p2: u8) -> Apdu {
        Apdu {
            op,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: None,
        }
    }

    pub fn data(mut self, data: Zeroizing<Vec<u8>>) -> Apdu {
        self.data = data;
        self
    }

    pub fn le(mut self, le: u8) -> Apdu {
        self.le = Some(le);
        self
    }

    /// The short APDUs that carry this command: one, or a chain with CLA
    /// `0x10` on every part but the last.
    pub fn encode(&self) -> Vec<Zeroizing<Vec<u8>>> {
        let header = |cla: u8, part: &[u8], le: Option<u8>| {
            let mut raw = Zeroizing::new(Vec::with_capacity(part.len() + 6));
            raw.extend_from_slice(&[cla, self.ins, self.p1, self.p2]);
            if !part.is_empty() {
                raw.push(part.len() as u8);
                raw.extend_from_slice(part);
            }
            if let Some(le) = le {
                raw.push(le);
            }
            raw
        };
        if self.data.len() <= CHUNK {
            return vec![header(0x00, &self.data, self.le)];
        }
        let parts: Vec<&[u8]> = self.data.chunks(CHUNK).collect();
        let last = parts.len() - 1;
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                if i == last {
                    header(0x00, part, self.le)
                } else {
                    header(0x10, part, None)
                }
            })
            .collect()
    }
}

/// How an applet hands out the rest of a long answer after `61xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoreData {
    /// GET RESPONSE `00 C0 00 00 00` (ISO; PIV, Management).
    GetResponse,
    /// SEND REMAINING `00 A5 00 00 00` (YKOATH).
    SendRemaining,
}

impl MoreData {
    fn ins(self) -> u8 {
        match self {
            MoreData::GetResponse => 0xC0,
            MoreData::SendRemaining => 0xA5,
        }
    }
}

/// A whole answer (all `61xx` parts joined) and its final status word.
pub struct Response {
    pub data: Zeroizing<Vec<u8>>,
    pub sw: Sw,
}

impl Response {
    /// The data when the status is `9000`; otherwise a generic error.
    /// Applets match on `sw` first where a status word means something
    /// particular to them.
    pub fn ok(self, op: &'static str) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        match self.sw {
            Sw::Ok => Ok(self.data),
            sw => Err(TokenError::Status { op, sw }),
        }
    }
}

/// Splits a card's answer into its data and status word; `None` when it is
/// shorter than a status word.
pub fn split_answer(answer: &[u8]) -> Option<(&[u8], Sw)> {
    let split = answer.len().checked_sub(2)?;
    let (data, sw) = answer.split_at(split);
    Some((data, Sw::from_u16(u16::from_be_bytes([sw[0], sw[1]]))))
}

/// [`Transaction::transmit`] without the card: `exchange` sends one short
/// APDU and leaves the answer's data at the front of the buffer, returning
/// its length and the status word. Chained parts must each be accepted
/// with `9000`; `61xx` is followed with `more` until the card has nothing
/// left, within bounds, so a confused card cannot keep vault reading.
///
/// [`Transaction::transmit`]: super::Transaction::transmit
pub fn transmit_with(
    apdu: &Apdu,
    more: MoreData,
    mut exchange: impl FnMut(&[u8], &mut [u8; RECV_BUF]) -> Result<(usize, Sw), TokenError>,
) -> Result<Response, TokenError> {
    let mut buf = Zeroizing::new([0u8; RECV_BUF]);
    let mut data = Zeroizing::new(Vec::with_capacity(RECV_BUF));
    let parts = apdu.encode();
    let mut sw = Sw::Ok;
    for (i, part) in parts.iter().enumerate() {
        let (len, s) = exchange(part, &mut buf)?;
        sw = s;
        if i + 1 < parts.len() {
            if sw != Sw::Ok {
                log::debug!(target: "vault", "{}: chained part {i} refused: {sw}", apdu.op);
                return Ok(Response { data, sw });
            }
        } else {
            data.extend_from_slice(&buf[..len]);
        }
    }
    let follow = [0x00, more.ins(), 0x00, 0x00, 0x00];
    let mut follow_ups = 0;
    while let Sw::MoreData(_) = sw {
        follow_ups += 1;
        if data.len() > MAX_RESPONSE || follow_ups > MAX_FOLLOW_UPS {
            return Err(TokenError::Malformed {
                op: apdu.op,
                what: "the answer never ends",
            });
        }
        let (len, s) = exchange(&follow, &mut buf)?;
        let answer = &buf[..len];
        // Grow by doubling into a fresh zeroizing buffer, so no copy of
        // the answer is left behind in freed memory.
        if data.len() + answer.len() > data.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(2 * (data.len() + answer.len())));
            bigger.extend_from_slice(&data);
            data = bigger;
        }
        data.extend_from_slice(answer);
        sw = s;
    }
    log::trace!(target: "vault", "{}: {sw}, {} bytes", apdu.op, data.len());
    Ok(Response { data, sw })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A card that gives `answers` in turn, then the last one forever.
    fn card(
        answers: &[&[u8]],
    ) -> impl FnMut(&[u8], &mut [u8; RECV_BUF]) -> Result<(usize, Sw), TokenError> {
        let answers: Vec<Vec<u8>> = answers.iter().map(|a| a.to_vec()).collect();
        let mut next = 0;
        move |_, buf| {
            let answer = &answers[next.min(answers.len() - 1)];
            next += 1;
            let (data, sw) = split_answer(answer).ok_or(TokenError::Malformed {
                op: "TEST",
                what: "answer shorter than a status word",
            })?;
            buf[..data.len()].copy_from_slice(data);
            Ok((data.len(), sw))
        }
    }

    #[test]
    fn more_data_is_followed_until_the_card_is_done() {
        let first = [vec![0x11; 256], vec![0x61, 0x20]].concat();
        let last = [vec![0x22; 32], vec![0x90, 0x00]].concat();
        let apdu = Apdu::new("TEST", 0xA1, 0, 0).data(Zeroizing::new(vec![0x5A; 300]));
        let resp = transmit_with(
            &apdu,
            MoreData::GetResponse,
            card(&[&[0x90, 0x00], &first, &last]),
        )
        .unwrap();
        assert_eq!(resp.sw, Sw::Ok);
        assert_eq!(
            &resp.data[..],
            &[first[..256].to_vec(), last[..32].to_vec()].concat()[..]
        );
    }

    #[test]
    fn a_card_answering_more_data_forever_is_cut_off() {
        // Found by fuzzing (fuzz/regressions/apdu_response/card-answering-61xx-forever):
        // 16 bytes and `61 39` to every GET RESPONSE took 4096 exchanges to
        // reach the byte limit, and `61 00` with no data never reached it.
        let sixteen = b"\x01\x00\xfe\xff\xff\xff\x01\x00\x79\x00\x28\x00\x00\x01\x00\x00\x61\x39";
        for answer in [&sixteen[..], &[0x61, 0x00][..]] {
            let apdu = Apdu::new("TEST", 0xA1, 0, 0).data(Zeroizing::new(vec![0xFF]));
            let mut calls = 0;
            let mut card = card(&[answer]);
            let result = transmit_with(&apdu, MoreData::GetResponse, |raw, buf| {
                calls += 1;
                card(raw, buf)
            });
            assert!(
                matches!(
                    result,
                    Err(TokenError::Malformed {
                        what: "the answer never ends",
                        ..
                    })
                ),
                "{:?}",
                result.map(|r| r.sw)
            );
            assert!(calls <= MAX_FOLLOW_UPS + 1, "{calls} exchanges");
        }
    }

    #[test]
    fn short_apdus_and_chaining() {
        let get = Apdu::new("GET", 0xFD, 0, 0).le(0);
        assert_eq!(
            get.encode().iter().map(|p| p.to_vec()).collect::<Vec<_>>(),
            vec![vec![0, 0xFD, 0, 0, 0]]
        );
        let case1 = Apdu::new("READ", 0x1D, 0, 0);
        assert_eq!(case1.encode()[0].as_slice(), [0, 0x1D, 0, 0]);
        let put = Apdu::new("PUT", 0x01, 0, 0).data(Zeroizing::new(vec![0x71, 1, b'n']));
        assert_eq!(
            put.encode()[0].as_slice(),
            [0, 0x01, 0, 0, 3, 0x71, 1, b'n']
        );
        let exactly = Apdu::new("PUT", 0xDB, 0x3F, 0xFF).data(Zeroizing::new(vec![9; 255]));
        assert_eq!(exactly.encode().len(), 1);
        assert_eq!(exactly.encode()[0][4], 255);

        let long = Apdu::new("PUT DATA", 0xDB, 0x3F, 0xFF)
            .data(Zeroizing::new((0..600u32).map(|i| i as u8).collect()))
            .le(0);
        let parts = long.encode();
        assert_eq!(parts.len(), 3);
        assert_eq!(&parts[0][..5], [0x10, 0xDB, 0x3F, 0xFF, 255]);
        assert_eq!(parts[0].len(), 5 + 255);
        assert_eq!(&parts[1][..5], [0x10, 0xDB, 0x3F, 0xFF, 255]);
        assert_eq!(&parts[2][..5], [0x00, 0xDB, 0x3F, 0xFF, 90]);
        assert_eq!(*parts[2].last().unwrap(), 0, "Le only on the last part");
        assert_eq!(parts[2].len(), 5 + 90 + 1);
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|p| p[5..5 + p[4] as usize].to_vec())
            .collect();
        assert_eq!(joined, (0..600u32).map(|i| i as u8).collect::<Vec<_>>());
    }
}
