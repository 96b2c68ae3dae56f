//! BER-TLV with one-byte tags (two-byte for `7F xx` / `5F xx`), as PIV and
//! YKOATH use it. Lengths: `< 0x80` one byte, `81 xx`, `82 xx xx`.

use crate::apdu::sw;

/// Appends `tag len value` to `out`.
pub fn put(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    put_len(out, value.len());
    out.extend_from_slice(value);
}

/// Returns `tag len value` as a new vector.
pub fn encode(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + tag.len() + 3);
    put(&mut out, tag, value);
    out
}

pub fn put_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

/// One parsed element: its tag (one or two bytes) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u16,
    pub value: &'a [u8],
}

fn read_len(buf: &[u8], pos: &mut usize) -> Result<usize, u16> {
    let first = *buf.get(*pos).ok_or(sw::INCORRECT_DATA)?;
    *pos += 1;
    match first {
        n if n < 0x80 => Ok(n as usize),
        0x81 => {
            let n = *buf.get(*pos).ok_or(sw::INCORRECT_DATA)? as usize;
            *pos += 1;
            Ok(n)
        }
        0x82 => {
            let hi = *buf.get(*pos).ok_or(sw::INCORRECT_DATA)? as usize;
            let lo = *buf.get(*pos + 1).ok_or(sw::INCORRECT_DATA)? as usize;
            *pos += 2;
            Ok(hi << 8 | lo)
        }
        _ => Err(sw::INCORRECT_DATA),
    }
}

/// Parses a flat sequence of TLVs. Malformed input is `6A80`, never a panic.
pub fn parse(buf: &[u8]) -> Result<Vec<Tlv<'_>>, u16> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let mut tag = buf[pos] as u16;
        pos += 1;
        // Multi-byte tags: low five bits all set in the first byte.
        if tag & 0x1F == 0x1F {
            let second = *buf.get(pos).ok_or(sw::INCORRECT_DATA)?;
            tag = tag << 8 | second as u16;
            pos += 1;
        }
        let len = read_len(buf, &mut pos)?;
        let end = pos.checked_add(len).ok_or(sw::INCORRECT_DATA)?;
        let value = buf.get(pos..end).ok_or(sw::INCORRECT_DATA)?;
        out.push(Tlv { tag, value });
        pos = end;
    }
    Ok(out)
}

/// The value of the first element with `tag`, if any.
pub fn find<'a>(tlvs: &[Tlv<'a>], tag: u16) -> Option<&'a [u8]> {
    tlvs.iter().find(|t| t.tag == tag).map(|t| t.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lengths() {
        for len in [0usize, 1, 0x7F, 0x80, 0xFF, 0x100, 0x1234] {
            let v = vec![0xAB; len];
            let enc = encode(&[0x53], &v);
            let parsed = parse(&enc).unwrap();
            assert_eq!(parsed.len(), 1);
            assert_eq!(parsed[0].tag, 0x53);
            assert_eq!(parsed[0].value.len(), len);
        }
    }

    #[test]
    fn two_byte_tags() {
        let enc = encode(&[0x7F, 0x49], &[1, 2, 3]);
        assert_eq!(parse(&enc).unwrap()[0].tag, 0x7F49);
    }

    #[test]
    fn truncated_is_error_not_panic() {
        assert_eq!(parse(&[0x53, 0x05, 1, 2]), Err(sw::INCORRECT_DATA));
        assert_eq!(parse(&[0x53, 0x82, 1]), Err(sw::INCORRECT_DATA));
        assert_eq!(parse(&[0x7F]), Err(sw::INCORRECT_DATA));
        assert_eq!(parse(&[0x53, 0x84, 0, 0, 0, 1]), Err(sw::INCORRECT_DATA));
    }
}
