//! A fault-injecting HTTP proxy on 127.0.0.1 in front of moto, for tests
//! that point `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_STS`/`_IAM`) at it:
//! a rule looks at each request (its action, the key that signed it, its
//! MFA device and code, how many requests of that action came before) and
//! answers it with an AWS-style error, forwards it to moto (at once or
//! after a while), or hangs (reads the request and never answers).
//!
//! One connection per request (`Connection: close` both ways), so every
//! SDK attempt is seen. The proxy serves until the test process ends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// moto's address, as the rig exports it: what a proxy forwards to.
pub fn moto_url() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: is hw/rig up to date?")
}

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Pass it to moto and its answer back.
    Forward,
    /// Hold it this long, then pass it to moto (as a slow AWS that has
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

/// One request: its head (without the blank line) and its body.
fn read_request(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
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
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    rule: &Rule,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, body) = read_request(&mut client)?;
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
        Answer::Forward => forward(upstream, &head, &body)?,
        Answer::ForwardAfter(wait) => {
            std::thread::sleep(wait);
            forward(upstream, &head, &body)?
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

/// Passes the request to moto on a connection of its own and returns
/// moto's answer with a Content-Length and `Connection: close`.
fn forward(upstream: &str, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    up.write_all(body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let end = find(&resp, b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no response head"))?;
    let rhead = String::from_utf8_lossy(&resp[..end]).into_owned();
    let mut rbody = resp[end + 4..].to_vec();
    if header(&rhead, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        rbody = dechunk(&rbody);
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
