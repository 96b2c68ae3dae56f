//! Touch requests as desktop notifications, shown by a real notification
//! service: Debian's dunst on an X server of its own (Xvfb), serving the
//! rig's session bus (`support::desktop`). vault runs as an IDE runs
//! `credential_process`: no terminal, no display to ask on, only the
//! session bus. `dbus-monitor` records what vault sent and dunst answered;
//! `dunstctl` says what dunst did with it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::desktop::Notifications;
use support::token::{self as tok, Secrets};
use support::vyk::TestKey;
use support::TestEnv;

#[test]
fn without_a_terminal_a_touch_is_a_desktop_notification_that_turns_into_touched() {
    let t = TestEnv::new("desktop_touch");
    let key = TestKey::start();
    let s = Secrets::new();
    let user = t.user("alice");
    t.write_config("[profile p]\nregion = eu-west-1\n");
    t.add("p", &user.key);
    tok::enroll(&t, &key, &s, &["--profile", "p"]);

    let desktop = Notifications::start(&t.dir);

    // As an IDE runs credential_process: a session of its own (every
    // test command runs under setsid: no controlling terminal), no
    // DISPLAY to ask on, the desktop's session bus.
    let mut exec = tok::hw(&t, &s, &["exec", "p", "--json"]).env("VAULT_PROMPT", "auto");
    exec.cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    let run = exec.run().success();
    support::JsonCreds::parse(&run.stdout);

    let serial = key.serial;
    let log = desktop.monitored();
    let request = format!("string \"Touch your YubiKey {serial}\"");
    assert!(log.contains(&request), "no touch request in:\n{log}");
    assert!(
        log.contains("string \"To unlock profile p's key (within 15 s)\""),
        "{log}"
    );
    assert!(
        log.contains(&format!("string \"YubiKey {serial} touched\"")),
        "the request did not turn into a confirmation:\n{log}"
    );
    // The confirmation replaced the request (Notify's replaces_id is the
    // id dunst returned), so one notification was shown, not two.
    let notifies = log.matches("member=Notify").count();
    assert_eq!(notifies, 2, "{log}");
    let shown: u32 = desktop
        .dunstctl(&["count", "displayed"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let history: u32 = desktop
        .dunstctl(&["count", "history"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        shown + history,
        1,
        "dunst holds {shown} shown, {history} in history"
    );
    // stderr still has the line, for a log that someone reads later.
    assert!(run.stderr.contains("Touch your YubiKey"), "{}", run.stderr);
}
