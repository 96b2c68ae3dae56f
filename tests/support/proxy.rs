//! A fault-injecting HTTP proxy on 127.0.0.1 in front of the rig's strict
//! STS (moto's IAM behind it), for tests
//! that point `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_STS`/`_IAM`) at it:
//! a rule looks at each request (its action, the key that signed it, its
//! MFA device and code, how many requests of that action came before) and
//! answers it with an AWS-style error, forwards it to the STS (at once or
//! after a while), or hangs (reads the request and never answers).
//!
//! The request goes to the STS byte for byte as the client sent it (its
//! `Host` header, the proxy's address, included): the rig's strict STS
//! verifies the SigV4 signature over the headers the client signed, so a
//! proxy that rewrote any of them would turn every forwarded request into
//! a `SignatureDoesNotMatch`. Towards the client, one connection per
//! request (the answer says `Connection: close`), so every SDK attempt is
//! seen. The proxy serves until the test process ends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The rig's STS address, as the rig exports it: what a proxy forwards to.
pub fn moto_url() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: is hw/rig up to date?")
}

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Pass it to the STS and its answer back.
    Forward,
    /// Hold it this long, then pass it to the STS (as a slow AWS that has
    /// the request but has not answered yet).
    ForwardAfter(Duration),
    /// An AWS query-protocol error: HTTP status, error code, message.
    Fault {
        status: u16,
        code: String,
        message: String,
    },
    /// Read the request, then never answer (until the client gives up).
    Hang,
}

impl Answer {
    pub fn fault(status: u16, code: &str, message: &str) -> Answer {
        Answer::Fault {
            status,
            code: code.to_string(),
            message: message.to_string(),
        }
    }
}

/// One request the proxy saw and what it did with it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub action: String,
    /// The access key ID it was signed with.
    pub key_id: String,
    /// `SerialNumber` (as sent, URL-encoded), when an MFA device was named.
    pub serial_number: Option<String>,
    /// `TokenCode`, when an MFA code was sent.
    pub token_code: Option<String>,
    /// When the proxy had read the request.
    pub at: Instant,
    /// How many requests of this action the proxy saw before this one.
    pub nth: usize,
    pub answer: Answer,
}

impl Seen {
    /// `SerialNumber`, decoded.
    pub fn serial_number_decoded(&self) -> Option<String> {
        self.serial_number.as_deref().map(percent_decode)
    }
}

/// A form value, percent-decoded (`+` is a space).
pub fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Rule = dyn Fn(&Seen) -> Answer + Send + Sync;

pub struct Proxy {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The requests of `action` seen so far.
    pub fn seen_action(&self, action: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.action == action)
            .collect()
    }

    /// The requests of `action` answered with a fault so far.
    pub fn faulted(&self, action: &str) -> Vec<Seen> {
        self.seen_action(action)
            .into_iter()
            .filter(|s| matches!(s.answer, Answer::Fault { .. }))
            .collect()
    }
}

/// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`);
/// `rule` decides each request's [`Answer`] (its `answer` field holds
/// `Forward` when the rule is called).
pub fn start(upstream: &str, rule: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let url = format!(
        "http://{}",
        listener.local_addr().expect("the proxy's address")
    );
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rule: Arc<Rule> = Arc::new(rule);
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (rule, seen, upstream) = (rule.clone(), seen2.clone(), upstream.clone());
            std::thread::spawn(move || {
                if let Err(e) = serve(conn, &upstream, rule.as_ref(), &seen) {
                    eprintln!("[proxy] {e}");
                }
            });
        }
    });
    Proxy { url, seen }
}

/// A `http://127.0.0.1:PORT` where nothing listens: connections are refused.
pub fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("address");
    drop(l);
    format!("http://{addr}")
}

fn find(h: &[u8], pat: &[u8]) -> Option<usize> {
    h.windows(pat.len()).position(|w| w == pat)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn form_param(form: &str, key: &str) -> Option<String> {
    form.split('&')
        .find_map(|p| p.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

/// One request: its head (without the blank line), its body, and every
/// byte read, as the client sent them (what is forwarded).
fn read_request(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < end + 4 + len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end + 4..].to_vec();
    Ok((head, body, buf))
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    rule: &Rule,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, body, raw) = read_request(&mut client)?;
    let form = String::from_utf8_lossy(&body).into_owned();
    let key_id = header(&head, "authorization")
        .and_then(|a| a.split_once("Credential="))
        .map(|(_, r)| r.split('/').next().unwrap_or("").to_string())
        .unwrap_or_default();
    let mut request = Seen {
        action: form_param(&form, "Action").unwrap_or_default(),
        key_id,
        serial_number: form_param(&form, "SerialNumber"),
        token_code: form_param(&form, "TokenCode"),
        at: Instant::now(),
        nth: 0,
        answer: Answer::Forward,
    };
    let answer = {
        // Decided under the lock, so `nth` counts are exact under concurrency.
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        request.nth = seen.iter().filter(|s| s.action == request.action).count();
        let answer = rule(&request);
        request.answer = answer.clone();
        seen.push(request);
        answer
    };
    let response = match answer {
        Answer::Forward => forward(upstream, &raw)?,
        Answer::ForwardAfter(wait) => {
            std::thread::sleep(wait);
            forward(upstream, &raw)?
        }
        Answer::Fault {
            status,
            code,
            message,
        } => fault_response(status, &code, &message),
        Answer::Hang => {
            // Hold the connection without a word until the client hangs
            // up (or two minutes pass).
            client.set_read_timeout(Some(Duration::from_secs(120)))?;
            let mut sink = [0u8; 1024];
            while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
            return Ok(());
        }
    };
    client.write_all(&response)?;
    client.flush()
}

fn fault_response(status: u16, code: &str, message: &str) -> Vec<u8> {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let body = format!(
        "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>\
         <Message>{message}</Message></Error>\
         <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    );
    format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Passes the request, byte for byte as the client sent it, to the STS on
/// a connection of its own, and returns the STS's answer with a
/// Content-Length and `Connection: close`. The request is not rewritten
/// (not even its `Connection` header): the answer is read to its end by
/// its Content-Length or chunked framing, whether or not the STS keeps the
/// connection open, and the connection is then dropped.
fn forward(upstream: &str, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    up.write_all(raw)?;
    let mut resp = Vec::new();
    // Reads more of the answer; whether the STS closed the connection.
    fn eof(resp: &mut Vec<u8>, up: &mut TcpStream) -> std::io::Result<bool> {
        let mut chunk = [0u8; 8192];
        let n = up.read(&mut chunk)?;
        resp.extend_from_slice(&chunk[..n]);
        Ok(n == 0)
    }
    let end = loop {
        if let Some(i) = find(&resp, b"\r\n\r\n") {
            break i;
        }
        if eof(&mut resp, &mut up)? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no response head",
            ));
        }
    };
    let rhead = String::from_utf8_lossy(&resp[..end]).into_owned();
    let chunked =
        header(&rhead, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length: Option<usize> = header(&rhead, "content-length").and_then(|v| v.parse().ok());
    loop {
        let body = &resp[end + 4..];
        let complete = if chunked {
            body.ends_with(b"0\r\n\r\n")
        } else {
            length.is_some_and(|l| body.len() >= l)
        };
        if complete || eof(&mut resp, &mut up)? {
            break;
        }
    }
    drop(up);
    let mut rbody = resp[end + 4..].to_vec();
    if chunked {
        rbody = dechunk(&rbody);
    } else if let Some(l) = length {
        rbody.truncate(l);
    }
    let mut out = String::new();
    for (i, line) in rhead.split("\r\n").enumerate() {
        let l = line.to_ascii_lowercase();
        if i > 0
            && (l.starts_with("connection:")
                || l.starts_with("transfer-encoding:")
                || l.starts_with("content-length:"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        rbody.len()
    ));
    let mut v = out.into_bytes();
    v.extend(rbody);
    Ok(v)
}

fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(j) = find(&b[i..], b"\r\n") {
        let line = String::from_utf8_lossy(&b[i..i + j]).into_owned();
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        i += j + 2;
        if size == 0 || i >= b.len() {
            break;
        }
        out.extend_from_slice(&b[i..(i + size).min(b.len())]);
        i += size + 2;
    }
    out
}
