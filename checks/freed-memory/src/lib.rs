//! Empty: this crate exists for its test (tests/secrets_in_freed_memory.rs).
