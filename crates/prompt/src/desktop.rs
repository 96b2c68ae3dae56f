//! Desktop notifications through the freedesktop Notifications service
//! (`org.freedesktop.Notifications` on the session bus: GNOME, KDE, XFCE,
//! dunst, mako…), for when nobody watches a terminal: an IDE or a GUI app
//! running `credential_process`, or `exec --ecs-server` renewing while its
//! command owns the terminal. A touch request is shown as a notification
//! that is replaced by "touched" when the key is touched, and closed when
//! the wait ends otherwise, so no stale "touch your key" stays on screen.
//!
//! Spec: the Desktop Notifications Specification 1.2, `Notify` (returns the
//! id; `replaces_id` updates a shown one) and `CloseNotification`.

use std::collections::HashMap;
use std::time::Duration;

use dbus::arg::{PropMap, RefArg, Variant};
use dbus::blocking::Connection;

use super::{TouchNotice, TouchRequest};

const SERVICE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";
/// How long a call may take. A notification that cannot be shown at once
/// is not worth delaying the key's touch window for; activating a daemon
/// that is installed but not running takes well under this.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long "touched" stays up: long enough to see, gone by itself.
const TOUCHED_SHOWN_MS: i32 = 3000;

/// A connection to the session bus's notification service.
pub struct Desktop {
    conn: Connection,
}

impl Desktop {
    /// The notification service of this login session, if one runs or can
    /// be started by the bus. Only `DBUS_SESSION_BUS_ADDRESS` (or the
    /// systemd user bus in `XDG_RUNTIME_DIR`) is used: libdbus would
    /// otherwise "autolaunch" a fresh bus through X11, where no
    /// notification daemon listens.
    pub fn connect() -> Option<Desktop> {
        let address = std::env::var("DBUS_SESSION_BUS_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty())
            .or_else(|| {
                let dir = std::env::var_os("XDG_RUNTIME_DIR")?;
                let bus = std::path::Path::new(&dir).join("bus");
                bus.exists()
                    .then(|| format!("unix:path={}", bus.to_string_lossy()))
            })?;
        let mut channel = dbus::channel::Channel::open_private(&address)
            .map_err(|e| log::debug!(target: "vault", "no session bus at {address}: {e}"))
            .ok()?;
        channel.register().ok()?;
        let conn = Connection::from(channel);
        let d = Desktop { conn };
        if d.service_available() {
            Some(d)
        } else {
            log::debug!(target: "vault", "no {SERVICE} on the session bus");
            None
        }
    }

    /// Whether the service runs now, or the bus can start it and there is a
    /// display for it.
    fn service_available(&self) -> bool {
        let bus = self.conn.with_proxy(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            CALL_TIMEOUT,
        );
        let owned: Result<(bool,), _> =
            bus.method_call("org.freedesktop.DBus", "NameHasOwner", (SERVICE,));
        if matches!(owned, Ok((true,))) {
            return true;
        }
        // A service the bus would start is only worth starting where it
        // can show something: without a display (SSH, CI, a headless box
        // with dunst installed) it would crash on every notice, slowly.
        let display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if !display {
            return false;
        }
        let names: Result<(Vec<String>,), _> =
            bus.method_call("org.freedesktop.DBus", "ListActivatableNames", ());
        names.is_ok_and(|(n,)| n.iter().any(|n| n == SERVICE))
    }

    /// Shows (or, with `replaces` non-zero, updates) a notification; its id.
    pub fn show(
        &self,
        replaces: u32,
        summary: &str,
        body: &str,
        expire_ms: i32,
    ) -> Result<u32, String> {
        let proxy = self.conn.with_proxy(SERVICE, PATH, CALL_TIMEOUT);
        let mut hints: PropMap = HashMap::new();
        // Critical: a touch request must not wait behind "do not disturb"
        // or vanish before the key gives up; the expiry still ends it.
        hints.insert("urgency".into(), Variant(Box::new(2u8) as Box<dyn RefArg>));
        hints.insert(
            "category".into(),
            Variant(Box::new("device".to_string()) as Box<dyn RefArg>),
        );
        let (id,): (u32,) = proxy
            .method_call(
                SERVICE,
                "Notify",
                (
                    "vault",
                    replaces,
                    "security-high",
                    summary,
                    body,
                    Vec::<String>::new(),
                    hints,
                    expire_ms,
                ),
            )
            .map_err(|e| format!("Notify: {e}"))?;
        Ok(id)
    }

    pub fn close(&self, id: u32) {
        let proxy = self.conn.with_proxy(SERVICE, PATH, CALL_TIMEOUT);
        let r: Result<(), _> = proxy.method_call(SERVICE, "CloseNotification", (id,));
        if let Err(e) = r {
            log::debug!(target: "vault", "CloseNotification {id}: {e}");
        }
    }

    /// A one-off message ("Insert YubiKey …"), gone after 10 s.
    pub fn message(&self, message: &str) -> bool {
        self.show(0, "vault", message, 10_000)
            .map_err(|e| log::debug!(target: "vault", "notification not shown: {e}"))
            .is_ok()
    }

    /// Shows a touch request until the notice is told how it ended.
    pub fn touch(self, request: &TouchRequest) -> Result<Box<dyn TouchNotice>, Desktop> {
        let summary = format!("Touch your YubiKey {}", request.serial);
        let body = format!(
            "{} (within {} s)",
            capitalized(&request.purpose),
            request.timeout.as_secs()
        );
        let expire = i32::try_from(request.timeout.as_millis()).unwrap_or(i32::MAX);
        match self.show(0, &summary, &body, expire) {
            Ok(id) => Ok(Box::new(TouchShown {
                desktop: Some(self),
                id,
                serial: request.serial,
                purpose: request.purpose.clone(),
            })),
            Err(e) => {
                log::debug!(target: "vault", "touch notification not shown: {e}");
                Err(self)
            }
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

struct TouchShown {
    /// Taken when the wait's end is shown; still here when dropped untold.
    desktop: Option<Desktop>,
    id: u32,
    serial: u32,
    purpose: String,
}

impl TouchNotice for TouchShown {
    fn done(mut self: Box<Self>, touched: bool) {
        let Some(desktop) = self.desktop.take() else {
            return;
        };
        if touched {
            // Replaced, not a second notification: the one on screen turns
            // into the confirmation, as the terminal's line does.
            let r = desktop.show(
                self.id,
                &format!("YubiKey {} touched", self.serial),
                &capitalized(&self.purpose),
                TOUCHED_SHOWN_MS,
            );
            if r.is_err() {
                desktop.close(self.id);
            }
        } else {
            desktop.close(self.id);
        }
    }
}

impl Drop for TouchShown {
    fn drop(&mut self) {
        // Untold (an error unwound past it): the wait is over all the same.
        if let Some(desktop) = self.desktop.take() {
            desktop.close(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_reads_as_a_sentence_in_the_body() {
        assert_eq!(
            capitalized("to unlock profile admin's key"),
            "To unlock profile admin's key"
        );
        assert_eq!(capitalized(""), "");
    }
}
