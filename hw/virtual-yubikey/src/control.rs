//! What a test controls while the key runs: touch behaviour, presence in
//! the reader, and deliberate removal in the middle of an operation.
//!
//! The controls are shared between the card thread and the control socket
//! thread; a touch wait sleeps on the condition variable so a `remove` or a
//! change of touch mode takes effect at once.

use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the next touch requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchMode {
    /// The user touches at once.
    Now,
    /// The user touches after this many milliseconds (may exceed the timeout).
    After(u64),
    /// Nobody touches: the request fails after the card's touch timeout.
    Never,
}

/// What happened to one touch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchOutcome {
    Given,
    TimedOut,
    /// The key was pulled out while it waited.
    Removed,
}

impl TouchOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TouchOutcome::Given => "given",
            TouchOutcome::TimedOut => "timeout",
            TouchOutcome::Removed => "removed",
        }
    }
}

#[derive(Debug)]
pub struct ControlState {
    pub touch: TouchMode,
    /// How long a real key waits for a touch before answering 6982 (15 s on a YubiKey 5).
    pub touch_timeout: Duration,
    /// Whether the key is in the reader (connected to vpcd).
    pub present: bool,
    /// Pull the key out instead of answering the next APDU with this INS.
    pub remove_on_ins: Option<u8>,
    /// Bumped on every removal so a waiting touch can tell it was interrupted.
    pub removals: u64,
    /// The live connection to vpcd, shut down to simulate removal.
    pub stream: Option<TcpStream>,
    /// Touches given so far (a test reads it through `status`).
    pub touches: u64,
    /// Answer the next GENERATE with another public key than the one the
    /// slot now holds, as a relaying PC/SC layer that swapped in its own
    /// key would (the slot's key, metadata and attestation stay the card's).
    pub relay_generate: bool,
}

#[derive(Debug, Clone)]
pub struct Controls(Arc<(Mutex<ControlState>, Condvar)>);

impl Controls {
    pub fn new(touch_timeout: Duration) -> Controls {
        Controls(Arc::new((
            Mutex::new(ControlState {
                touch: TouchMode::Now,
                touch_timeout,
                present: true,
                remove_on_ins: None,
                removals: 0,
                stream: None,
                touches: 0,
                relay_generate: false,
            }),
            Condvar::new(),
        )))
    }

    pub fn lock(&self) -> MutexGuard<'_, ControlState> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain flags; the flags are still meaningful.
        self.0 .0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn notify(&self) {
        self.0 .1.notify_all();
    }

    pub fn set_touch(&self, mode: TouchMode) {
        self.lock().touch = mode;
        self.notify();
    }

    pub fn set_touch_timeout(&self, timeout: Duration) {
        self.lock().touch_timeout = timeout;
        self.notify();
    }

    /// Pulls the key: the vpcd connection is shut down, so the reader sees
    /// the card vanish, and whatever the card was doing is abandoned.
    pub fn remove(&self) {
        let mut st = self.lock();
        st.present = false;
        st.removals += 1;
        if let Some(s) = st.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        drop(st);
        self.notify();
    }

    pub fn insert(&self) {
        self.lock().present = true;
        self.notify();
    }

    /// Blocks until the key is (re)inserted.
    pub fn wait_present(&self) {
        let mut st = self.lock();
        while !st.present {
            st = self.0 .1.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits for a touch as the current mode dictates.
    pub fn wait_touch(&self) -> TouchOutcome {
        let start = Instant::now();
        let mut st = self.lock();
        let removals = st.removals;
        loop {
            if st.removals != removals || !st.present {
                return TouchOutcome::Removed;
            }
            let elapsed = start.elapsed();
            let timeout = st.touch_timeout;
            let given_at = match st.touch {
                TouchMode::Now => Some(Duration::ZERO),
                TouchMode::After(ms) => Some(Duration::from_millis(ms)),
                TouchMode::Never => None,
            };
            if let Some(at) = given_at {
                if at <= timeout && elapsed >= at {
                    st.touches += 1;
                    return TouchOutcome::Given;
                }
            }
            if elapsed >= timeout {
                return TouchOutcome::TimedOut;
            }
            let next = match given_at {
                Some(at) if at <= timeout => at.min(timeout),
                _ => timeout,
            };
            let wait = next.saturating_sub(elapsed).max(Duration::from_millis(1));
            st = self
                .0
                 .1
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
