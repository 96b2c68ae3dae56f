//! The `--ecs-server` endpoint's request reading and judging: any bytes,
//! arriving in any pieces, give a complete head within the limits or a
//! refusal, and only an authorized `GET /` is served.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read};
use std::time::Duration;
use vault::ecs::{judge, read_head, ReadHead, ReadTimeout, Verdict, MAX_HEAD};

const TOKEN: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A client sending `data` in pieces of varying size, then closing.
struct Client<'a> {
    data: &'a [u8],
    reads: usize,
}

impl Read for Client<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        const SIZES: [usize; 5] = [1, 3, 1024, 7, 200];
        let n = SIZES[self.reads % SIZES.len()]
            .min(buf.len())
            .min(self.data.len());
        self.reads += 1;
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl ReadTimeout for Client<'_> {
    fn set_timeout(&mut self, _t: Duration) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if judge(data, TOKEN) == Verdict::Serve {
        assert!(data.starts_with(b"GET /"));
    }
    let mut client = Client { data, reads: 0 };
    if let ReadHead::Complete(head) = read_head(&mut client, Duration::from_secs(60)) {
        assert!(head.len() <= MAX_HEAD);
        assert!(head.ends_with(b"\r\n\r\n"));
        assert!(data.starts_with(&head));
        let _ = judge(&head, TOKEN);
    }
});
