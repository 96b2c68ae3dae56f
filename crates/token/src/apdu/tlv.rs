//! BER-TLV as YubiKey applets use it: one- to three-byte tags, lengths in
//! short form or `81`/`82`/`83`. Parsing never panics: a malformed answer
//! is an error naming what was wrong.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u32,
    pub value: &'a [u8],
}

/// What was wrong with the bytes (never the bytes themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Reads one TLV from the front of `data`; returns it and the rest.
pub fn parse_one(data: &[u8]) -> Result<(Tlv<'_>, &[u8]), Malformed> {
    let (&first, mut rest) = data.split_first().ok_or(Malformed("missing tag"))?;
    let mut tag = first as u32;
    if first & 0x1F == 0x1F {
        // Subsequent tag bytes while bit 8 is set; three bytes at most.
        loop {
            let (&b, r) = rest.split_first().ok_or(Malformed("truncated tag"))?;
            rest = r;
            if tag > 0xFFFF {
                return Err(Malformed("tag longer than 3 bytes"));
            }
            tag = tag << 8 | b as u32;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&l, r) = rest.split_first().ok_or(Malformed("missing length"))?;
    rest = r;
    let len = match l {
        n if n < 0x80 => n as usize,
        0x81..=0x83 => {
            let k = (l & 0x7F) as usize;
            if rest.len() < k {
                return Err(Malformed("truncated length"));
            }
            let (bytes, r) = rest.split_at(k);
            rest = r;
            bytes.iter().fold(0usize, |n, &b| n << 8 | b as usize)
        }
        _ => return Err(Malformed("unsupported length encoding")),
    };
    if rest.len() < len {
        return Err(Malformed("value longer than the data"));
    }
    let (value, rest) = rest.split_at(len);
    Ok((Tlv { tag, value }, rest))
}

/// Reads a sequence of TLVs that fills `data` exactly.
pub fn parse(mut data: &[u8]) -> Result<Vec<Tlv<'_>>, Malformed> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (tlv, rest) = parse_one(data)?;
        out.push(tlv);
        data = rest;
    }
    Ok(out)
}

/// The value of the first TLV with `tag`.
pub fn find<'a>(tlvs: &[Tlv<'a>], tag: u32) -> Option<&'a [u8]> {
    tlvs.iter().find(|t| t.tag == tag).map(|t| t.value)
}

/// Appends tag, length and value to `out`.
pub fn put(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
    let tag_bytes = tag.to_be_bytes();
    let skip = tag_bytes.iter().take_while(|&&b| b == 0).count().min(3);
    out.extend_from_slice(&tag_bytes[skip..]);
    let n = value.len();
    match n {
        0..=0x7F => out.push(n as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        _ => out.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
}

pub fn encode(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    put(&mut out, tag, value);
    out
}

#[cfg(test)]
mod tests {
    use crate::apdu::{parse_device_info, tlv};

    #[test]
    fn tlv_parses_short_long_and_multibyte_tags() {
        let mut data = tlv::encode(0x79, &[5, 4, 3]);
        tlv::put(&mut data, 0x71, &[0xAA; 8]);
        tlv::put(&mut data, 0x7F49, &[1; 0x86]);
        tlv::put(&mut data, 0x5FC105, &[2; 300]);
        let tlvs = tlv::parse(&data).unwrap();
        assert_eq!(tlvs.len(), 4);
        assert_eq!(tlv::find(&tlvs, 0x79), Some(&[5u8, 4, 3][..]));
        assert_eq!(tlv::find(&tlvs, 0x7F49).unwrap().len(), 0x86);
        assert_eq!(tlv::find(&tlvs, 0x5FC105).unwrap().len(), 300);
        assert_eq!(&data[..2], [0x79, 3]);
        // 0x86 bytes need the 81 form, 300 the 82 form.
        assert!(data.windows(3).any(|w| w == [0x49, 0x81, 0x86]));
        assert!(data
            .windows(6)
            .any(|w| w == [0x5F, 0xC1, 0x05, 0x82, 0x01, 0x2C]));
        assert_eq!(tlv::find(&tlvs, 0x72), None);
        assert_eq!(tlv::parse(&[]).unwrap(), vec![]);
    }

    #[test]
    fn tlv_malformed_is_an_error_not_a_panic() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x71], "missing length"),
            (&[0x71, 0x05, 1, 2], "value longer than the data"),
            (&[0x71, 0x81], "truncated length"),
            (&[0x71, 0x82, 0x01], "truncated length"),
            (&[0x71, 0x80], "unsupported length encoding"),
            (&[0x71, 0x84, 0, 0, 0, 1, 0], "unsupported length encoding"),
            (&[0x7F], "truncated tag"),
            (&[0x7F, 0x81], "truncated tag"),
            (
                &[0x1F, 0x81, 0x82, 0x83, 0x04, 0x00],
                "tag longer than 3 bytes",
            ),
        ];
        for (bytes, what) in cases {
            assert_eq!(tlv::parse(bytes), Err(tlv::Malformed(what)), "{bytes:02X?}");
        }
        // Every prefix of a valid encoding, and arbitrary bytes, stay errors
        // or values: never a panic.
        let full = tlv::encode(0x5FC10A, &[7; 200]);
        for n in 0..full.len() {
            assert!(tlv::parse(&full[..n]).is_err() || n == 0);
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let len = (x % 12) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = tlv::parse(&bytes);
            let _ = parse_device_info(&bytes);
        }
    }
}
