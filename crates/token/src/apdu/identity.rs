//! Cards this process already identified, so opening one again skips the Management applet.

use super::discovery::{current_states, is_present};
use super::Version;
use std::ffi::{CStr, CString};
use std::sync::Mutex;

/// A card this process has identified, by reader and pcscd's event count
/// for that reader (which changes with every removal and insertion).
struct Identified {
    reader: CString,
    insertion: u32,
    serial: u32,
    version: Option<Version>,
}

/// What this process learned about the cards it asked: a cold `vault exec`
/// opens the same key for PIV and then for OATH, and the second opening
/// need not ask the Management applet again (2 APDUs).
static IDENTIFIED: Mutex<Vec<Identified>> = Mutex::new(Vec::new());

/// Records that the card in `reader` at event count `insertion` is YubiKey
/// `serial`. The count must be read *before* the card was asked: a card
/// swapped in between then has a newer count and never matches.
pub fn remember_identity(reader: &CStr, insertion: u32, serial: u32, version: Option<Version>) {
    if let Ok(mut list) = IDENTIFIED.lock() {
        list.retain(|k| k.reader.as_c_str() != reader);
        list.push(Identified {
            reader: reader.to_owned(),
            insertion,
            serial,
            version,
        });
    }
}

pub(super) fn identified(reader: &CStr, insertion: u32) -> Option<(u32, Option<Version>)> {
    let list = IDENTIFIED.lock().ok()?;
    list.iter()
        .find(|k| k.reader.as_c_str() == reader && k.insertion == insertion)
        .map(|k| (k.serial, k.version))
}

/// pcscd's event count of each present reader in `readers` now, for
/// [`remember_identity`]; readers without a card are left out.
pub fn insertion_counts(ctx: &pcsc::Context, readers: &[CString]) -> Vec<(CString, u32)> {
    current_states(ctx, readers)
        .iter()
        .skip(1)
        .filter(|st| is_present(st))
        .map(|st| (st.name().to_owned(), st.event_count()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_is_known_only_in_the_insertion_it_was_identified_in() {
        let reader = CString::new("Unit Test Reader 00 00").unwrap();
        let other = CString::new("Unit Test Reader 01 00").unwrap();
        assert_eq!(identified(&reader, 7), None);
        remember_identity(&reader, 7, 1234, Some(Version([5, 4, 3])));
        assert_eq!(
            identified(&reader, 7),
            Some((1234, Some(Version([5, 4, 3]))))
        );
        // Pulled and put back (or swapped): a new count, asked again.
        assert_eq!(identified(&reader, 8), None);
        assert_eq!(identified(&other, 7), None);
        // The newest identification of a reader replaces the older one.
        remember_identity(&reader, 9, 5678, None);
        assert_eq!(identified(&reader, 7), None);
        assert_eq!(identified(&reader, 9), Some((5678, None)));
    }
}
