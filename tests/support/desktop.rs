//! A real notification service for the tests that need one: Debian's dunst
//! on an X server of its own (Xvfb, on a display number it picks itself),
//! serving the rig's session bus, with `dbus-monitor` recording what was
//! sent to it. Everything is stopped when the value is dropped, which
//! releases `org.freedesktop.Notifications` on the bus again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Notifications {
    children: Vec<Child>,
    monitor_log: PathBuf,
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < end, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Notifications {
    /// dunst on the session bus of `DBUS_SESSION_BUS_ADDRESS`, its
    /// files under `dir`. Only one test at a time may hold it: the bus
    /// has one owner of the name.
    pub fn start(dir: &Path) -> Notifications {
        std::env::var("DBUS_SESSION_BUS_ADDRESS").expect("a session bus (run in hw/rig)");
        let mut n = Notifications {
            children: Vec::new(),
            monitor_log: dir.join("notifications-monitor"),
        };
        // -displayfd: Xvfb picks a free display and writes its number,
        // so rigs running side by side never share one.
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "640x480x24",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (apt install xvfb)");
        let mut number = String::new();
        BufReader::new(xvfb.stdout.take().unwrap())
            .read_line(&mut number)
            .unwrap();
        n.children.push(xvfb);
        let display = format!(":{}", number.trim());
        assert_ne!(display, ":", "Xvfb gave no display number");
        let config = dir.join("dunst-config");
        std::fs::create_dir_all(&config).unwrap();
        n.children.push(
            Command::new("dunst")
                .env("DISPLAY", &display)
                // No user's dunstrc: the defaults.
                .env("XDG_CONFIG_HOME", &config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("dunst.log")).unwrap())
                .spawn()
                .expect("dunst (apt install dunst)"),
        );
        wait_until("dunst", || n.dunstctl(&["is-paused"]).is_some());
        n.children.push(
            Command::new("dbus-monitor")
                .args(["--session", "interface='org.freedesktop.Notifications'"])
                .stdout(std::fs::File::create(&n.monitor_log).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .expect("dbus-monitor (apt install dbus)"),
        );
        // dbus-monitor listens once it has said hello on the bus.
        wait_until("dbus-monitor", || {
            std::fs::read_to_string(&n.monitor_log).is_ok_and(|l| !l.is_empty())
        });
        n
    }

    /// What `dbus-monitor` saw sent to the notification service.
    pub fn monitored(&self) -> String {
        // dbus-monitor writes as messages pass; give the last one a moment.
        std::thread::sleep(Duration::from_millis(300));
        std::fs::read_to_string(&self.monitor_log).unwrap()
    }

    /// `dunstctl ARGS`: what dunst itself says it holds; None on failure.
    pub fn dunstctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("dunstctl")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
