//! Errors that cross a layer keep their type and say what to do next. A
//! lower layer hands its own error up boxed as [`Hinted`], so the message
//! and the hint stay apart until the one place that renders them (the
//! `vault` crate's `error::report`), instead of being flattened into a
//! string at each seam.

/// An error that may know what the user should do next.
pub trait Hinted: std::error::Error + Send + Sync + 'static {
    /// What to do next ("insert YubiKey 123", "N PIN tries left: …").
    fn hint(&self) -> Option<String> {
        None
    }
}

/// A plain message from code that has no error type of its own (test
/// doubles, software tokens).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Message(pub String);

impl Hinted for Message {}

impl From<Message> for Box<dyn Hinted> {
    fn from(m: Message) -> Box<dyn Hinted> {
        Box::new(m)
    }
}
