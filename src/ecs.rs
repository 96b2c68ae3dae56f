//! The ECS container-credentials endpoint behind `vault exec --ecs-server`.
//!
//! SDKs and the AWS CLI fetch credentials from
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI`, send
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN` as the `Authorization` header, and
//! fetch again before what they got expires. vault answers on 127.0.0.1, on
//! a random port, with a random token, from the session cache; it makes a
//! new session (a touch, an MFA code) only when the one it serves has less
//! than the cache's minimum left. So a long-running command outlives any one
//! session without holding credentials in its environment, and needs no
//! root (aws-vault's EC2 metadata server binds 169.254.169.254).
//!
//! The HTTP is hand-written and small on purpose: one GET per connection,
//! loopback only, strict limits on size, time and concurrency, and every
//! malformed request answered with an error status, never a panic. Heads are
//! read on a thread per connection; credentials come from the caller's
//! thread (which owns the provider, the prompt and the token), one request
//! at a time, through a channel: so the provider's lock and single-STS-call
//! guarantees hold as for any other vault process.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};
use subtle::ConstantTimeEq;
use vault_base::creds::SessionCredentials;
use zeroize::Zeroizing;

/// A request head longer than this is refused (431).
pub const MAX_HEAD: usize = 8 * 1024;
/// At most this many header lines (431 beyond).
pub const MAX_HEADERS: usize = 64;
/// How long a client has to send its whole request head (408 after). SDKs
/// send it in one write right after connecting, and give up on the whole
/// request after 1 to 2 s (the JS SDK after 1 s, botocore after 2 s): a slow
/// head is not a client worth a connection slot.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections handled at once; more wait in the listen queue until one
/// ends (every one ends within [`READ_TIMEOUT`] unless it is waiting for
/// credentials).
pub const MAX_CONNECTIONS: usize = 64;
/// How long a request waits for credentials: a new session may need a
/// touch or an MFA code.
const FETCH_WAIT: Duration = Duration::from_secs(300);

/// The listening endpoint, before it serves.
pub struct Server {
    listener: TcpListener,
    url: String,
    token: Arc<Zeroizing<String>>,
}

/// A connection's request for credentials, answered by the thread that owns
/// the provider.
pub struct Fetch {
    reply: mpsc::SyncSender<Result<Zeroizing<String>, String>>,
}

impl Fetch {
    /// Sends the credentials (or why there are none) back to the connection.
    pub fn answer(self, r: Result<&SessionCredentials, String>) {
        // The connection may have given up meanwhile; nothing to do then.
        let _ = self.reply.send(r.map(credentials_json));
    }
}

/// The ECS container-credentials object.
pub fn credentials_json(c: &SessionCredentials) -> Zeroizing<String> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Object<'a> {
        access_key_id: &'a str,
        secret_access_key: &'a str,
        token: &'a str,
        expiration: String,
    }
    vault_base::secret::json_text(
        &Object {
            access_key_id: &c.access_key_id,
            secret_access_key: c.secret_access_key.expose(),
            token: c.session_token.expose(),
            expiration: vault_profile::output::rfc3339(c.expiration),
        },
        false,
    )
}

/// A random token: 32 bytes from the OS, hex.
fn random_token() -> Zeroizing<String> {
    use rand::RngCore;
    let mut b = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(b.as_mut());
    Zeroizing::new(hex::encode(b.as_ref()))
}

impl Server {
    /// Listens on 127.0.0.1 on a port the kernel picks, with a new token.
    pub fn bind() -> io::Result<Server> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let url = format!("http://{}/", listener.local_addr()?);
        Ok(Server {
            listener,
            url,
            token: Arc::new(random_token()),
        })
    }

    /// `http://127.0.0.1:PORT/`: the command's `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The command's `AWS_CONTAINER_AUTHORIZATION_TOKEN`. A credential: never log it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Serves on background threads. Each authorized request arrives on
    /// `requests` as a [`Fetch`], which the caller answers.
    pub fn start(self, requests: mpsc::Sender<Fetch>) -> io::Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        let Server {
            listener, token, ..
        } = self;
        std::thread::Builder::new()
            .name("ecs-accept".into())
            .spawn(move || loop {
                let batch = accept_batch(&listener);
                for stream in PeerTable::read().allowed(batch) {
                    // At the limit, the next connections wait (in the batch
                    // or the listen queue) until one ends.
                    while active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    active.fetch_add(1, Ordering::SeqCst);
                    let (token, requests) = (token.clone(), requests.clone());
                    let guard = ActiveGuard(active.clone());
                    let spawned = std::thread::Builder::new()
                        .name("ecs-conn".into())
                        .stack_size(256 * 1024)
                        .spawn(move || {
                            let _guard = guard;
                            handle(stream, token.as_bytes(), |f| requests.send(f).is_ok());
                        });
                    if let Err(e) = spawned {
                        // The closure (and so the guard) was dropped with the error.
                        log::debug!(target: "vault", "ecs server: cannot start a thread: {e}");
                    }
                }
            })?;
        Ok(())
    }
}

/// Most connections accepted in one go, judged against one read of the
/// kernel's socket table.
const ACCEPT_BATCH: usize = 1024;

/// The next connection, waited for, and every other one already queued.
/// Reading the kernel's socket table costs time in proportion to the
/// sockets open, so reading it once per connection made a flood of n
/// connections cost n² and kept the command's own request waiting behind
/// it (640 connections of another user took over 5 s in CI); one read per
/// batch keeps the cost linear.
fn accept_batch(listener: &TcpListener) -> Vec<TcpStream> {
    let first = match listener.accept() {
        Ok((s, _)) => s,
        Err(e) => {
            // Out of file descriptors and the like: do not spin.
            log::debug!(target: "vault", "ecs server: accept failed: {e}");
            std::thread::sleep(Duration::from_millis(50));
            return Vec::new();
        }
    };
    let mut batch = vec![first];
    if listener.set_nonblocking(true).is_ok() {
        while batch.len() < ACCEPT_BATCH {
            match listener.accept() {
                Ok((s, _)) => batch.push(s),
                Err(_) => break,
            }
        }
        let _ = listener.set_nonblocking(false);
    }
    batch
}

/// Who may have the token: vault's own user (the command it started) or
/// root. Another local user cannot read the command's environment, so can
/// never be authorized; without this check it could still hold every
/// connection slot while the command's SDK gives up. Its connections are
/// closed at once, before any slot is taken: the per-user cap is zero for
/// everyone but the owner.
struct PeerTable {
    #[cfg(target_os = "linux")]
    owners: Option<SocketOwners>,
}

impl PeerTable {
    /// The table as it is now: read after the batch was accepted, it holds
    /// every connection in it whose client is still there.
    fn read() -> PeerTable {
        #[cfg(target_os = "linux")]
        {
            let owners = match std::fs::read_to_string("/proc/net/tcp") {
                Ok(table) => Some(SocketOwners::parse(&table)),
                Err(e) => {
                    log::debug!(target: "vault", "ecs server: /proc/net/tcp unreadable ({e}); peers not checked");
                    None
                }
            };
            PeerTable { owners }
        }
        #[cfg(not(target_os = "linux"))]
        PeerTable {}
    }

    /// The connections that may be served; the others are closed, unanswered.
    fn allowed(&self, batch: Vec<TcpStream>) -> Vec<TcpStream> {
        batch
            .into_iter()
            .filter(|s| self.allows(s))
            // Accepted from a listener that was briefly non-blocking.
            .filter(|s| s.set_nonblocking(false).is_ok())
            .collect()
    }

    fn allows(&self, stream: &TcpStream) -> bool {
        #[cfg(target_os = "linux")]
        {
            let Some(owners) = &self.owners else {
                return true;
            };
            let (Ok(std::net::SocketAddr::V4(peer)), Ok(std::net::SocketAddr::V4(local))) =
                (stream.peer_addr(), stream.local_addr())
            else {
                return false;
            };
            // The peer's socket is in this network namespace's table, owned
            // by the user who opened it.
            let euid = rustix::process::geteuid().as_raw();
            match owners.owner(peer, local) {
                Some(uid) if uid == euid || uid == 0 => true,
                owner => {
                    log::debug!(target: "vault",
                        "ecs server: connection from {peer} closed: its socket belongs to {} (vault runs as uid {euid})",
                        owner.map_or("no user found".to_string(), |u| format!("uid {u}")));
                    false
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = stream;
            true
        }
    }
}

/// The uid owning each TCP socket of a `/proc/net/tcp` table, by its
/// (local, remote) addresses (in the kernel's hex notation: the IPv4
/// address as a native-endian u32, the port as a plain number).
pub struct SocketOwners(HashMap<(SocketAddrV4, SocketAddrV4), u32>);

impl SocketOwners {
    pub fn parse(table: &str) -> SocketOwners {
        let addr = |hex: &str| {
            let (ip, port) = hex.split_once(':')?;
            let ip = u32::from_str_radix(ip, 16).ok()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
        };
        SocketOwners(
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if f.len() <= 7 {
                        return None;
                    }
                    Some(((addr(f[1])?, addr(f[2])?), f[7].parse().ok()?))
                })
                .collect(),
        )
    }

    /// The uid owning the socket bound to `local` and connected to `remote`.
    pub fn owner(&self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<u32> {
        self.0.get(&(local, remote)).copied()
    }
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The statuses the endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Timeout,
    HeadTooLarge,
    Failed,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::Timeout => 408,
            Status::HeadTooLarge => 431,
            Status::Failed => 500,
        }
    }
    fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::Timeout => "Request Timeout",
            Status::HeadTooLarge => "Request Header Fields Too Large",
            Status::Failed => "Internal Server Error",
        }
    }
}

/// What to do with a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An authorized `GET /`: serve credentials.
    Serve,
    /// Refuse, with this status and message.
    Refuse(Status, &'static str),
}

/// Judges a complete request head (up to and including the blank line):
/// 400 when it is not HTTP/1.x, 405 for anything but GET, 401 without an
/// `Authorization` header, 403 with a wrong one (compared in constant time),
/// 404 for any path but `/`.
pub fn judge(head: &[u8], token: &[u8]) -> Verdict {
    use Status::{BadRequest, Forbidden, HeadTooLarge, MethodNotAllowed, NotFound, Unauthorized};
    let Ok(text) = std::str::from_utf8(head) else {
        return Verdict::Refuse(BadRequest, "the request is not text");
    };
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Verdict::Refuse(BadRequest, "malformed request line");
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Verdict::Refuse(BadRequest, "only HTTP/1.x is spoken here");
    }
    if method.is_empty() || !method.bytes().all(is_token_char) {
        return Verdict::Refuse(BadRequest, "malformed method");
    }
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Verdict::Refuse(BadRequest, "malformed request target");
    }
    let mut authorization: Option<&str> = None;
    let mut count = 0;
    for line in lines {
        if line.is_empty() {
            // The blank line that ends the head (and the empty rest after it).
            continue;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Verdict::Refuse(HeadTooLarge, "too many header fields");
        }
        let Some((name, value)) = line.split_once(':') else {
            return Verdict::Refuse(BadRequest, "malformed header field");
        };
        // No obsolete line folding, no space before the colon.
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Verdict::Refuse(BadRequest, "malformed header field name");
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Verdict::Refuse(BadRequest, "malformed header field value");
        }
        if name.eq_ignore_ascii_case("authorization") {
            if authorization.is_some() {
                return Verdict::Refuse(BadRequest, "more than one Authorization header");
            }
            authorization = Some(value.trim_matches([' ', '\t']));
        }
    }
    if method != "GET" {
        return Verdict::Refuse(MethodNotAllowed, "only GET is allowed");
    }
    let Some(given) = authorization else {
        return Verdict::Refuse(Unauthorized, "missing Authorization header");
    };
    if !bool::from(given.as_bytes().ct_eq(token)) {
        return Verdict::Refuse(Forbidden, "invalid Authorization token");
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/" {
        return Verdict::Refuse(NotFound, "no such path: credentials are at /");
    }
    Verdict::Serve
}

/// RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// How reading a head ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadHead {
    Complete(Vec<u8>),
    /// The client closed the connection first.
    Closed,
    Refused(Status),
}

/// Reads until the blank line that ends the head, within [`MAX_HEAD`] bytes
/// and `timeout` in all (not per read: a trickle of bytes cannot hold a
/// connection open).
pub fn read_head(stream: &mut impl ReadTimeout, timeout: Duration) -> ReadHead {
    let deadline = Instant::now() + timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_timeout(left).is_err() {
            return ReadHead::Refused(Status::Timeout);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return ReadHead::Closed,
            Ok(n) => {
                let from = buf.len().saturating_sub(3);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = find(&buf[from..], b"\r\n\r\n") {
                    if from + i + 4 > MAX_HEAD {
                        return ReadHead::Refused(Status::HeadTooLarge);
                    }
                    buf.truncate(from + i + 4);
                    return ReadHead::Complete(buf);
                }
                if buf.len() > MAX_HEAD {
                    return ReadHead::Refused(Status::HeadTooLarge);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return ReadHead::Refused(Status::Timeout)
            }
            Err(_) => return ReadHead::Closed,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A stream whose reads can be given a timeout (a `TcpStream`; tests use others).
pub trait ReadTimeout: Read {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

fn message(m: &str) -> Zeroizing<String> {
    Zeroizing::new(serde_json::json!({ "Message": m }).to_string())
}

fn write_response(mut stream: &TcpStream, status: Status, body: &str) -> io::Result<()> {
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 256));
    write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        status.code(),
        status.reason(),
        body.len()
    )?;
    if status == Status::MethodNotAllowed {
        out.extend_from_slice(b"Allow: GET\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out)?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

/// One connection: read and judge the head, then answer from `fetch`
/// (which hands the request to the provider's thread; false when that is
/// gone).
fn handle(mut stream: TcpStream, token: &[u8], fetch: impl FnOnce(Fetch) -> bool) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let head = match read_head(&mut stream, READ_TIMEOUT) {
        ReadHead::Complete(h) => h,
        ReadHead::Closed => return,
        ReadHead::Refused(status) => {
            let _ = write_response(&stream, status, &message(status.reason()));
            return;
        }
    };
    let (status, body) = match judge(&head, token) {
        Verdict::Refuse(status, why) => {
            log::debug!(target: "vault", "ecs server: {} ({why})", status.code());
            (status, message(why))
        }
        Verdict::Serve => {
            let (tx, rx) = mpsc::sync_channel(1);
            if !fetch(Fetch { reply: tx }) {
                (Status::Failed, message("vault is shutting down"))
            } else {
                match rx.recv_timeout(FETCH_WAIT) {
                    Ok(Ok(json)) => (Status::Ok, json),
                    Ok(Err(e)) => (Status::Failed, message(&e)),
                    Err(_) => (Status::Failed, message("no credentials in time")),
                }
            }
        }
    };
    let _ = write_response(&stream, status, &body);
}

/// The credentials the endpoint serves, renewed through `fetch` (the same
/// cache-then-provider path `vault exec` takes) once less than
/// `min_remaining` is left.
pub struct Refresher<F> {
    current: Option<SessionCredentials>,
    min_remaining: Duration,
    fetch: F,
    warned_short: bool,
}

impl<F: FnMut() -> Result<SessionCredentials, String>> Refresher<F> {
    pub fn new(min_remaining: Duration, fetch: F) -> Refresher<F> {
        Refresher {
            current: None,
            min_remaining,
            fetch,
            warned_short: false,
        }
    }

    /// Starts from credentials already fetched.
    pub fn seed(&mut self, c: SessionCredentials) {
        self.current = Some(c);
    }

    /// Credentials with more than the minimum left, fetching new ones when
    /// needed. When fetching fails, the current ones are served while they
    /// last (with a warning), so a passing STS or token failure does not
    /// break a running command.
    pub fn get(&mut self) -> Result<&SessionCredentials, String> {
        let now = SystemTime::now();
        let due = self
            .current
            .as_ref()
            .is_none_or(|c| c.remaining(now) <= self.min_remaining);
        if due {
            match (self.fetch)() {
                Ok(c) => {
                    if c.remaining(now) <= self.min_remaining && !self.warned_short {
                        self.warned_short = true;
                        log::warn!(target: "vault",
                            "sessions last {} s, not more than the {} s a cached session must have left (VAULT_MIN_REMAINING): every request makes a new one",
                            c.remaining(now).as_secs(), self.min_remaining.as_secs());
                    }
                    log::debug!(target: "vault", "ecs server: serving credentials {} ({} s left)",
                        vault_base::secret::mask_key_id(&c.access_key_id), c.remaining(now).as_secs());
                    self.current = Some(c);
                }
                Err(e) => match &self.current {
                    Some(c) if !c.remaining(now).is_zero() => {
                        log::warn!(target: "vault",
                            "cannot renew the served credentials ({e}); serving the current ones, {} s left",
                            c.remaining(now).as_secs());
                    }
                    _ => return Err(e),
                },
            }
        }
        self.current
            .as_ref()
            .ok_or_else(|| "no credentials".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_endian = "little")]
    #[test]
    fn socket_owner_reads_the_kernels_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:C350 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000 65534        0 2 1 0 20 4 30 10 -1
   2: 0100007F:A1B2 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
";
        let server = "127.0.0.1:41394".parse().unwrap();
        let client = "127.0.0.1:50000".parse().unwrap();
        let owners = SocketOwners::parse(table);
        assert_eq!(owners.owner(client, server), Some(65534));
        assert_eq!(owners.owner(server, client), Some(0));
        assert_eq!(owners.owner(client, "127.0.0.1:1".parse().unwrap()), None);
        assert_eq!(SocketOwners::parse("").owner(client, server), None);
        // A damaged line is skipped, not a reason to give up on the rest.
        let damaged = format!("{table}   3: zz:1 0100007F:A1B2 01 0 0 0 7 0 4\n");
        assert_eq!(
            SocketOwners::parse(&damaged).owner(client, server),
            Some(65534)
        );
    }

    /// The live table names this process as the owner of its own client socket.
    #[cfg(target_os = "linux")]
    #[test]
    fn socket_owner_finds_a_live_connections_user() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let (std::net::SocketAddr::V4(peer), std::net::SocketAddr::V4(local)) = (
            accepted.peer_addr().unwrap(),
            accepted.local_addr().unwrap(),
        ) else {
            panic!("not IPv4");
        };
        assert_eq!(
            SocketOwners::parse(&table).owner(peer, local),
            Some(rustix::process::geteuid().as_raw())
        );
        assert_eq!(PeerTable::read().allowed(vec![accepted]).len(), 1);
        drop(client);
    }
    use rand::{Rng, SeedableRng};
    use vault_base::secret::{SecretAccessKey, SessionToken};

    const TOKEN: &[u8] = b"0123456789abcdef";

    fn req(s: &str) -> Verdict {
        judge(s.as_bytes(), TOKEN)
    }

    #[test]
    fn an_authorized_get_is_served() {
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAuthorization: 0123456789abcdef\r\n\r\n"),
            Verdict::Serve
        );
        assert_eq!(
            req("GET /?x=1 HTTP/1.0\r\nauthorization:\t0123456789abcdef \r\n\r\n"),
            Verdict::Serve
        );
    }

    #[test]
    fn refusals_have_their_status() {
        let status = |s: &str| match req(s) {
            Verdict::Refuse(st, _) => st.code(),
            Verdict::Serve => 200,
        };
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 401);
        assert_eq!(
            status("GET / HTTP/1.1\r\nAuthorization: wrong\r\n\r\n"),
            403
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n"),
            403
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nAuthorization: 0123456789abcde\r\n\r\n"),
            403
        );
        assert_eq!(
            status("GET /role-arn/x HTTP/1.1\r\nAuthorization: 0123456789abcdef\r\n\r\n"),
            404
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nAuthorization: 0123456789abcdef\r\n\r\n"),
            405
        );
        assert_eq!(status("OPTIONS / HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(
            status("GET / HTTP/1.1\r\nAuthorization: 0123456789abcdef\r\nAuthorization: 0123456789abcdef\r\n\r\n"),
            400
        );
        assert_eq!(status("GET / HTTP/2\r\n\r\n"), 400);
        assert_eq!(status("GET  / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\n folded\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nNo-Colon\r\n\r\n"), 400);
        assert_eq!(status("\r\n\r\n"), 400);
        let many = "X: y\r\n".repeat(MAX_HEADERS + 1);
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), 431);
    }

    #[test]
    fn garbage_is_judged_without_panicking() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..300);
            let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // Often make it look almost like a request.
            if rng.gen_bool(0.5) {
                let mut prefix = b"GET / HTTP/1.1\r\nAuthorization: ".to_vec();
                prefix.append(&mut b);
                b = prefix;
            }
            b.extend_from_slice(b"\r\n\r\n");
            assert_ne!(judge(&b, TOKEN), Verdict::Serve);
        }
    }

    /// A reader that yields its chunks, then times out (as a silent client does).
    struct Trickle(Vec<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let c = self.0.remove(0);
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            Ok(n)
        }
    }

    impl ReadTimeout for Trickle {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn heads_are_read_within_limits() {
        let t = Duration::from_secs(1);
        let mut split = Trickle(vec![b"GET / HTTP/1.1\r".to_vec(), b"\n\r\nrest".to_vec()]);
        assert_eq!(
            read_head(&mut split, t),
            ReadHead::Complete(b"GET / HTTP/1.1\r\n\r\n".to_vec())
        );
        assert_eq!(
            read_head(&mut Trickle(vec![b"GET / HTTP/1.1\r\n".to_vec()]), t),
            ReadHead::Refused(Status::Timeout)
        );
        let big = vec![b'a'; 1024];
        assert_eq!(
            read_head(&mut Trickle(vec![big; 10]), t),
            ReadHead::Refused(Status::HeadTooLarge)
        );
        assert_eq!(read_head(&mut &b"GET"[..], t), ReadHead::Closed);
    }

    impl ReadTimeout for &[u8] {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn creds(id: &str, secs: u64) -> SessionCredentials {
        SessionCredentials {
            access_key_id: id.into(),
            secret_access_key: SecretAccessKey::new("s"),
            session_token: SessionToken::new("t"),
            expiration: SystemTime::now() + Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_refresher_renews_only_below_the_minimum() {
        let mut calls = 0;
        let mut r = Refresher::new(Duration::from_secs(300), || {
            calls += 1;
            Ok(creds(
                &format!("ASIA{calls}"),
                if calls == 1 { 200 } else { 3600 },
            ))
        });
        // The first is fetched; it is already short, so the next is too.
        assert_eq!(r.get().unwrap().access_key_id, "ASIA1");
        assert_eq!(r.get().unwrap().access_key_id, "ASIA2");
        assert_eq!(r.get().unwrap().access_key_id, "ASIA2");
        drop(r);
        assert_eq!(calls, 2);
    }

    #[test]
    fn the_refresher_serves_what_it_has_while_renewal_fails() {
        let mut n = 0;
        let mut r = Refresher::new(Duration::from_secs(300), || {
            n += 1;
            if n == 1 {
                Ok(creds("ASIA1", 100))
            } else {
                Err("STS is down".to_string())
            }
        });
        assert_eq!(r.get().unwrap().access_key_id, "ASIA1");
        assert_eq!(r.get().unwrap().access_key_id, "ASIA1");
        let mut r = Refresher::new(Duration::from_secs(300), || Err("no".to_string()));
        assert_eq!(r.get().unwrap_err(), "no");
    }

    #[test]
    fn the_object_is_what_sdks_read() {
        let v: serde_json::Value =
            serde_json::from_str(&credentials_json(&creds("ASIAX", 100))).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["AccessKeyId", "Expiration", "SecretAccessKey", "Token"]
        );
        assert!(v["Expiration"].as_str().unwrap().ends_with('Z'));
    }
}
