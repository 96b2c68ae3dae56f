//! Running the key: the vpcd connection (insertion is a connection,
//! removal a shutdown of it) and the control socket tests drive it through.

use crate::card::Card;
use crate::control::{Controls, TouchMode};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// Plugs the card into vpcd at `addr` and serves it until the process ends.
/// Reconnects when vpcd goes away, and stays out while removed.
pub fn run(mut card: Card, addr: &str) -> std::io::Result<()> {
    let controls = card.controls().clone();
    loop {
        controls.wait_present();
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(_) => {
                // pcscd may not have opened the port yet, or was restarted.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        stream.set_nodelay(true)?;
        controls.lock().stream = Some(stream.try_clone()?);
        card.event("inserted");
        let mut conn = vpicc::Connection::from(stream);
        while conn.poll(&mut card).is_ok() {}
        controls.lock().stream = None;
        card.lose_power("disconnected");
        if controls.lock().present {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Serves the control socket at `path` on a background thread.
pub fn serve_control(path: &Path, controls: Controls) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let controls = controls.clone();
            std::thread::spawn(move || handle_control(conn, &controls));
        }
    });
    Ok(())
}

fn handle_control(conn: UnixStream, controls: &Controls) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut out = conn;
    for line in BufReader::new(read_half).lines() {
        let Ok(line) = line else { return };
        let answer = match apply(controls, &line) {
            Ok(msg) => format!("ok {msg}\n"),
            Err(msg) => format!("error {msg}\n"),
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// One control command. The vocabulary is documented in hw/README.md.
pub fn apply(controls: &Controls, line: &str) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["touch", "now"] => {
            controls.set_touch(TouchMode::Now);
            Ok("touch now".into())
        }
        ["touch", "never"] => {
            controls.set_touch(TouchMode::Never);
            Ok("touch never".into())
        }
        ["touch", "after", ms] | ["touch", ms] => {
            let ms: u64 = ms.parse().map_err(|_| format!("not a number of ms: {ms}"))?;
            controls.set_touch(TouchMode::After(ms));
            Ok(format!("touch after {ms}"))
        }
        ["touch-timeout", ms] => {
            let ms: u64 = ms.parse().map_err(|_| format!("not a number of ms: {ms}"))?;
            controls.set_touch_timeout(Duration::from_millis(ms));
            Ok(format!("touch-timeout {ms}"))
        }
        ["remove"] => {
            controls.remove();
            Ok("removed".into())
        }
        ["insert"] => {
            controls.insert();
            Ok("inserted".into())
        }
        ["remove-on", ins] => {
            let ins = u8::from_str_radix(ins.trim_start_matches("0x"), 16)
                .map_err(|_| format!("not an INS byte in hex: {ins}"))?;
            controls.lock().remove_on_ins = Some(ins);
            Ok(format!("remove-on {ins:02X}"))
        }
        ["relay-generate"] => {
            controls.lock().relay_generate = true;
            Ok("the next GENERATE answers another key".into())
        }
        ["status"] => {
            let st = controls.lock();
            let touch = match st.touch {
                TouchMode::Now => "now".to_string(),
                TouchMode::Never => "never".to_string(),
                TouchMode::After(ms) => format!("after {ms}"),
            };
            Ok(format!(
                "present={} touch={touch:?} touch_timeout_ms={} touches={} removals={}",
                st.present,
                st.touch_timeout.as_millis(),
                st.touches,
                st.removals
            ))
        }
        _ => Err(format!(
            "unknown command {line:?}; try: touch now|never|after MS, touch-timeout MS, remove, insert, remove-on INS, relay-generate, status"
        )),
    }
}

/// Sends one control command to a running key and returns its answer.
pub fn send_control(path: &Path, command: &str) -> std::io::Result<String> {
    let mut conn = UnixStream::connect(path)?;
    conn.write_all(command.as_bytes())?;
    conn.write_all(b"\n")?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}
