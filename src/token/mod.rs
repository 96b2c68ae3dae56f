//! The hardware token, layered as yubikey.rs is: a session opened by serial
//! (`apdu::find_by_serial`), a PC/SC transaction holding the selected
//! applet, APDUs (chaining, `61xx`), TLV. `apdu` is shared by every applet;
//! each applet keeps its byte-level protocol in its own file.

pub mod apdu;
pub mod fido2;
pub mod oath;
pub mod piv;
