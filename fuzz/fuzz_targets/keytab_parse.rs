//! The keytab parser reads files that users own, as root: it must refuse
//! anything malformed without panicking, and whatever it accepts must be
//! self-consistent (every entry has a principal with a realm and at least
//! one component, and a non-empty key), since its entries go straight into
//! libkrb5's memory keytab.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pamkrb::keytab;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = keytab::parse(data) {
        assert!(parsed.version == 1 || parsed.version == 2);
        for entry in &parsed.entries {
            assert!(!entry.principal.realm.is_empty());
            assert!(!entry.principal.components.is_empty());
            assert!(entry.principal.components.iter().all(|c| !c.is_empty()));
            assert!(!entry.key.as_bytes().is_empty());
            // What the bindings and error messages do with an entry.
            let _ = entry.principal.to_string_lossy();
        }
        let _ = parsed.principals();
        if let Some(first) = parsed.entries.first() {
            assert!(parsed.entries_for(&first.principal).count() >= 1);
        }
    }
});
