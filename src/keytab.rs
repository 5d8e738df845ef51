//! MIT keytab files, read and parsed in Rust.
//!
//! The hub runs as root and reads a keytab at a path a user shapes (their
//! home). Handing that file to libkrb5 by name had three problems: libkrb5
//! takes a blocking `fcntl` read lock on it, so a user holding a write lock
//! on their own keytab stalls the hub's Kerberos threads; its C parser runs as
//! root on bytes the user chose; and opening by name follows symlinks in the
//! directories on the way. Here the file goes through [`safe_path`]'s walk,
//! is read with plain read(2) (no lock taken or waited for), capped in size,
//! and parsed by bounds-checked code that cannot panic; libkrb5 only ever
//! sees the resulting keys, in a memory keytab (see `kinit`).
//!
//! The format is MIT krb5's `doc/formats/keytab_file_format.rst`; the
//! reference reader is `krb5_ktfileint_internal_read_entry` in
//! `src/lib/krb5/keytab/kt_file.c`. This parser is stricter than it where
//! MIT would quietly stop reading (a zero-length name, a record whose fields
//! run past its own length, a truncated tail): such files are not written by
//! any Kerberos tool, and refusing them is safer than guessing.

use std::path::{Path, PathBuf};

use crate::ccache::Principal;
use crate::safe_path::{self, SafePathError};
use crate::secret::SecretBytes;

/// Keytabs hold a few keys per principal; anything this large is not one.
pub const MAX_KEYTAB_BYTES: usize = 1 << 20;

/// The first byte of every keytab.
const MAGIC: u8 = 0x05;
/// Version 1: native byte order, the realm counted among the components,
/// no name type. Only very old MIT releases wrote it.
const VERSION_1: u8 = 0x01;
/// Version 2: big-endian, what every current implementation writes.
const VERSION_2: u8 = 0x02;

/// Most name components a principal may have; real ones have one to three.
const MAX_COMPONENTS: usize = 64;

/// How many principals a "has no key for" message lists.
const MAX_PRINCIPALS_IN_ERROR: usize = 8;

/// One key of a keytab.
#[derive(Debug)]
pub struct KeytabEntry {
    pub principal: Principal,
    /// When the entry was written, seconds since the epoch.
    pub timestamp: u32,
    /// Key version number: the 32-bit trailer when present and non-zero,
    /// otherwise the 8-bit field (which wraps above 255).
    pub kvno: u32,
    /// `ENCTYPE_*` number, e.g. 18 for aes256-cts-hmac-sha1-96.
    pub enctype: i32,
    pub key: SecretBytes,
}

/// A parsed keytab.
#[derive(Debug)]
pub struct Keytab {
    /// 1 or 2 (the second byte of the file).
    pub version: u8,
    /// The live entries in file order; deleted entries (holes) are skipped.
    pub entries: Vec<KeytabEntry>,
}

impl Keytab {
    /// Entries whose principal is `principal` ([`Principal::same_as`]).
    pub fn entries_for<'k>(
        &'k self,
        principal: &'k Principal,
    ) -> impl Iterator<Item = &'k KeytabEntry> + 'k {
        self.entries
            .iter()
            .filter(move |entry| entry.principal.same_as(principal))
    }

    /// The distinct principals in the keytab, in file order, unparsed.
    pub fn principals(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for entry in &self.entries {
            let name = entry.principal.to_string_lossy();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// A keytab file as found on disk: who owns it, its mode, and its contents.
#[derive(Debug)]
pub struct KeytabFile {
    pub owner_uid: u32,
    pub owner_gid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub size: u64,
    pub keytab: Keytab,
}

/// Why bytes are not a keytab. Offsets are from the start of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeytabFormatError {
    #[error("is empty")]
    Empty,
    #[error("is not a keytab (first byte {0:#04x}, expected 0x05)")]
    NotAKeytab(u8),
    #[error("has unsupported keytab format version {0} (supported: 1 and 2)")]
    UnsupportedVersion(u8),
    #[error("is truncated: {what} at byte {offset} runs past the end of {within}")]
    Truncated {
        what: &'static str,
        offset: usize,
        within: &'static str,
    },
    #[error("has a malformed entry at byte {offset}: {reason}")]
    BadEntry { offset: usize, reason: &'static str },
}

/// Why a keytab could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeytabError {
    #[error("keytab {path} does not exist")]
    Missing { path: PathBuf },

    /// A symlink on the way, not a regular file, too large, unreadable.
    #[error(transparent)]
    File(SafePathError),

    #[error("keytab {path} {source}")]
    Format {
        path: PathBuf,
        source: KeytabFormatError,
    },

    #[error("keytab {path} has no key for {principal}; {held}")]
    NoKeyFor {
        path: PathBuf,
        principal: String,
        /// What the keytab holds instead, ready for the message.
        held: String,
    },
}

impl KeytabError {
    /// The error for a keytab that holds nothing for `principal`.
    pub fn no_key_for(path: &Path, principal: &str, keytab: &Keytab) -> Self {
        let names = keytab.principals();
        let held = if names.is_empty() {
            "it holds no keys".to_owned()
        } else {
            let mut shown: Vec<String> = names
                .iter()
                .take(MAX_PRINCIPALS_IN_ERROR)
                .map(|name| crate::ccache::shorten(name.clone()))
                .collect();
            if names.len() > MAX_PRINCIPALS_IN_ERROR {
                shown.push(format!(
                    "and {} more",
                    names.len() - MAX_PRINCIPALS_IN_ERROR
                ));
            }
            format!("it holds keys for {}", shown.join(", "))
        };
        KeytabError::NoKeyFor {
            path: path.to_path_buf(),
            principal: crate::ccache::shorten(principal.to_owned()),
            held,
        }
    }
}

/// Reads and parses the keytab at `path` through the safe walk: no symlink in
/// any component, a single regular file, at most [`MAX_KEYTAB_BYTES`], no
/// lock. The raw bytes are wiped once parsed.
pub fn read(path: &Path) -> Result<KeytabFile, KeytabError> {
    let (bytes, st) = safe_path::read_regular_file(
        path,
        "read keytab",
        MAX_KEYTAB_BYTES,
        safe_path::Links::Single,
    )
    .map_err(|err| {
        if err.is_not_found() {
            KeytabError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            KeytabError::File(err)
        }
    })?;
    let bytes = SecretBytes::new(bytes);
    let keytab = parse(bytes.as_bytes()).map_err(|source| KeytabError::Format {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(KeytabFile {
        owner_uid: st.st_uid,
        owner_gid: st.st_gid,
        mode: st.st_mode & 0o7777,
        size: u64::try_from(st.st_size).unwrap_or(0),
        keytab,
    })
}

/// Parses keytab bytes. Never panics; every length is checked against the
/// bytes that remain before anything is allocated.
pub fn parse(bytes: &[u8]) -> Result<Keytab, KeytabFormatError> {
    let (&magic, rest) = bytes.split_first().ok_or(KeytabFormatError::Empty)?;
    if magic != MAGIC {
        return Err(KeytabFormatError::NotAKeytab(magic));
    }
    let &version = rest.first().ok_or(KeytabFormatError::Truncated {
        what: "the format version",
        offset: 1,
        within: "the file",
    })?;
    if version != VERSION_1 && version != VERSION_2 {
        return Err(KeytabFormatError::UnsupportedVersion(version));
    }
    let mut file = Reader {
        bytes,
        pos: 2,
        version,
        within: "the file",
    };
    let mut entries = Vec::new();
    while file.remaining() > 0 {
        let offset = file.pos;
        let size = file.i32("a record length")?;
        if size == 0 {
            // MIT stops reading at a zero length: the rest is unused space.
            break;
        }
        if size < 0 {
            // A hole: an entry deleted in place (kadmin ktremove) whose
            // bytes are overwritten and skipped by every reader.
            let hole = size.checked_neg().ok_or(KeytabFormatError::BadEntry {
                offset,
                reason: "the record length is -2^31",
            })?;
            file.take(hole as usize, "a deleted entry (hole)")?;
            continue;
        }
        let start = file.pos;
        file.take(size as usize, "an entry")?;
        // The entry is read by a cursor that ends where its record ends, so
        // a field cannot reach into the next record; offsets stay absolute.
        let mut record = Reader {
            bytes: &bytes[..file.pos],
            pos: start,
            version,
            within: "its record",
        };
        entries.push(read_entry(&mut record)?);
    }
    Ok(Keytab { version, entries })
}

fn read_entry(r: &mut Reader<'_>) -> Result<KeytabEntry, KeytabFormatError> {
    let bad = |offset, reason| KeytabFormatError::BadEntry { offset, reason };
    let count_at = r.pos;
    let mut count = i32::from(r.i16("the component count")?);
    if r.version == VERSION_1 {
        // Version 1 counts the realm as a component.
        count -= 1;
    }
    if count <= 0 {
        return Err(bad(count_at, "the principal has no name components"));
    }
    if count as usize > MAX_COMPONENTS {
        return Err(bad(count_at, "the principal has too many name components"));
    }
    let realm = r.counted("the realm")?;
    let mut components = Vec::with_capacity(count as usize);
    for _ in 0..count {
        components.push(r.counted("a name component")?.to_vec());
    }
    let name_type = if r.version == VERSION_1 {
        0 // KRB5_NT_UNKNOWN, as MIT leaves it
    } else {
        r.i32("the name type")?
    };
    let timestamp = r.u32("the timestamp")?;
    let kvno8 = r.u8("the kvno")?;
    let enctype = r.i16("the enctype")?;
    let key = SecretBytes::new(r.counted("the key")?.to_vec());
    let mut kvno = u32::from(kvno8);
    // The 32-bit kvno follows when at least four bytes of the record remain;
    // zero there is padding, not a kvno. Anything after it (Heimdal writes
    // flags) is ignored, as MIT ignores it.
    if r.remaining() >= 4 {
        let kvno32 = r.u32("the 32-bit kvno")?;
        if kvno32 != 0 {
            kvno = kvno32;
        }
    }
    Ok(KeytabEntry {
        principal: Principal {
            name_type,
            realm: realm.to_vec(),
            components,
        },
        timestamp,
        kvno,
        enctype: i32::from(enctype),
        key,
    })
}

/// A cursor over the file (or one entry) that never reads past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    version: u8,
    /// What ends at the end of `bytes`, for messages.
    within: &'static str,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], KeytabFormatError> {
        let truncated = KeytabFormatError::Truncated {
            what,
            offset: self.pos,
            within: self.within,
        };
        let end = self.pos.checked_add(len).ok_or(truncated.clone())?;
        let slice = self.bytes.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], KeytabFormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// Version 1 wrote integers in the writer's byte order; the only sensible
    /// guess is that it was this machine's.
    fn native_order(&self) -> bool {
        self.version == VERSION_1
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, KeytabFormatError> {
        Ok(self.take(1, what)?[0])
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, KeytabFormatError> {
        let raw = self.array(what)?;
        Ok(if self.native_order() {
            i16::from_ne_bytes(raw)
        } else {
            i16::from_be_bytes(raw)
        })
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, KeytabFormatError> {
        let raw = self.array(what)?;
        Ok(if self.native_order() {
            i32::from_ne_bytes(raw)
        } else {
            i32::from_be_bytes(raw)
        })
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, KeytabFormatError> {
        let raw = self.array(what)?;
        Ok(if self.native_order() {
            u32::from_ne_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    }

    /// A 16-bit length and that many bytes; the length must be positive
    /// (MIT writes no empty names or keys and stops reading at one).
    fn counted(&mut self, what: &'static str) -> Result<&'a [u8], KeytabFormatError> {
        let at = self.pos;
        let len = self.i16(what)?;
        if len <= 0 {
            return Err(KeytabFormatError::BadEntry {
                offset: at,
                reason: match what {
                    "the realm" => "the realm has a zero or negative length",
                    "the key" => "the key has a zero or negative length",
                    _ => "a name component has a zero or negative length",
                },
            });
        }
        self.take(len as usize, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keytab");
    /// When ktutil wrote the fixtures (see tests/data/keytab/README.md).
    const TIMESTAMP: u32 = 1_796_162_674;
    const ALICE_AES256: &str = "34f6922f7a166e0937b86891cc00a00d92560591b2045e0990700616ec7ff87c";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(FIXTURES).join(name)).unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn alice() -> Principal {
        Principal {
            name_type: 1,
            realm: b"FIXTURE.TEST".to_vec(),
            components: vec![b"alice".to_vec()],
        }
    }

    /// One record body, in version 1 (native order, realm counted, no name
    /// type) or version 2 layout.
    fn record(version: u8, p: &Principal, kvno8: u8, enctype: i16, key: &[u8]) -> Vec<u8> {
        let v1 = version == VERSION_1;
        let i16b = |v: i16| if v1 { v.to_ne_bytes() } else { v.to_be_bytes() };
        let i32b = |v: i32| if v1 { v.to_ne_bytes() } else { v.to_be_bytes() };
        let mut out = Vec::new();
        let count = p.components.len() as i16 + i16::from(v1);
        out.extend(i16b(count));
        out.extend(i16b(p.realm.len() as i16));
        out.extend(&p.realm);
        for c in &p.components {
            out.extend(i16b(c.len() as i16));
            out.extend(c);
        }
        if !v1 {
            out.extend(i32b(p.name_type));
        }
        out.extend(i32b(TIMESTAMP as i32));
        out.push(kvno8);
        out.extend(i16b(enctype));
        out.extend(i16b(key.len() as i16));
        out.extend(key);
        out
    }

    fn with_length(version: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() as i32;
        let mut out = if version == VERSION_1 {
            len.to_ne_bytes().to_vec()
        } else {
            len.to_be_bytes().to_vec()
        };
        out.extend(body);
        out
    }

    #[test]
    fn single_fixture_from_ktutil() {
        let keytab = parse(&fixture("single.keytab")).unwrap();
        assert_eq!(keytab.version, 2);
        assert_eq!(keytab.entries.len(), 1);
        let entry = &keytab.entries[0];
        assert_eq!(entry.principal, alice());
        assert_eq!(entry.principal.to_string_lossy(), "alice@FIXTURE.TEST");
        assert_eq!(
            (entry.kvno, entry.enctype, entry.timestamp),
            (3, 18, TIMESTAMP)
        );
        assert_eq!(hex(entry.key.as_bytes()), ALICE_AES256);
        assert!(!format!("{entry:?}").contains(&ALICE_AES256[..8]));
    }

    #[test]
    fn multi_fixture_from_ktutil() {
        let bytes = fixture("multi.keytab");
        let keytab = parse(&bytes).unwrap();
        let summary: Vec<(String, u32, i32, usize)> = keytab
            .entries
            .iter()
            .map(|e| {
                (
                    e.principal.to_string_lossy(),
                    e.kvno,
                    e.enctype,
                    e.key.as_bytes().len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("alice@FIXTURE.TEST".into(), 3, 18, 32),
                ("alice@FIXTURE.TEST".into(), 3, 17, 16),
                ("alice/pg-dmp-workbench2@FIXTURE.TEST".into(), 300, 18, 32),
                ("bob@OTHER.TEST".into(), 1, 20, 32),
            ]
        );
        assert!(keytab.entries.iter().all(|e| e.timestamp == TIMESTAMP));
        assert_eq!(
            hex(keytab.entries[1].key.as_bytes()),
            "6b038221636a3308d3fa57954ef6c7ba"
        );
        // The 8-bit field of the kvno-300 entry really holds 44: the trailer won.
        let needle = [&TIMESTAMP.to_be_bytes()[..], &[44u8, 0, 18]].concat();
        assert!(bytes.windows(needle.len()).any(|w| w == needle));
        assert_eq!(
            keytab.principals(),
            vec![
                "alice@FIXTURE.TEST",
                "alice/pg-dmp-workbench2@FIXTURE.TEST",
                "bob@OTHER.TEST"
            ]
        );
        let mut who = alice();
        who.name_type = 0; // ignored, as by krb5_principal_compare
        let mine: Vec<i32> = keytab.entries_for(&who).map(|e| e.enctype).collect();
        assert_eq!(mine, vec![18, 17]);
    }

    #[test]
    fn holes_are_skipped_and_a_zero_length_ends_the_file() {
        let single = fixture("single.keytab");
        let mut bytes = vec![MAGIC, VERSION_2];
        bytes.extend((-10i32).to_be_bytes());
        bytes.extend([0xAA; 10]);
        bytes.extend(&single[2..]);
        bytes.extend((-3i32).to_be_bytes());
        bytes.extend([0; 3]);
        bytes.extend(0i32.to_be_bytes());
        bytes.extend(b"unused space after the end");
        let keytab = parse(&bytes).unwrap();
        assert_eq!(keytab.entries.len(), 1);
        assert_eq!(hex(keytab.entries[0].key.as_bytes()), ALICE_AES256);

        let mut bad = vec![MAGIC, VERSION_2];
        bad.extend(i32::MIN.to_be_bytes());
        assert!(matches!(
            parse(&bad),
            Err(KeytabFormatError::BadEntry { offset: 2, .. })
        ));
        let mut past_end = vec![MAGIC, VERSION_2];
        past_end.extend((-100i32).to_be_bytes());
        assert!(matches!(
            parse(&past_end),
            Err(KeytabFormatError::Truncated { .. })
        ));
    }

    #[test]
    fn version_1_native_order() {
        let mut bytes = vec![MAGIC, VERSION_1];
        let body = record(VERSION_1, &alice(), 7, 18, &[1; 32]);
        bytes.extend(with_length(VERSION_1, &body));
        let keytab = parse(&bytes).unwrap();
        assert_eq!(keytab.version, 1);
        let e = &keytab.entries[0];
        assert_eq!(e.principal.components, vec![b"alice".to_vec()]);
        assert_eq!(e.principal.realm, b"FIXTURE.TEST");
        assert_eq!((e.principal.name_type, e.kvno, e.enctype), (0, 7, 18));
        assert_eq!(e.timestamp, TIMESTAMP);
    }

    #[test]
    fn kvno_trailer_zero_is_padding_and_extra_bytes_are_ignored() {
        let mut body = record(VERSION_2, &alice(), 5, 18, &[1; 32]);
        body.extend(0u32.to_be_bytes());
        let mut bytes = vec![MAGIC, VERSION_2];
        bytes.extend(with_length(VERSION_2, &body));
        assert_eq!(parse(&bytes).unwrap().entries[0].kvno, 5);

        // Heimdal appends 32-bit flags after the 32-bit kvno.
        let mut body = record(VERSION_2, &alice(), 5, 18, &[1; 32]);
        body.extend(261u32.to_be_bytes());
        body.extend(1u32.to_be_bytes());
        let mut bytes = vec![MAGIC, VERSION_2];
        bytes.extend(with_length(VERSION_2, &body));
        assert_eq!(parse(&bytes).unwrap().entries[0].kvno, 261);

        // Fewer than four bytes left: not a trailer, ignored.
        let mut body = record(VERSION_2, &alice(), 5, 18, &[1; 32]);
        body.extend([9, 9]);
        let mut bytes = vec![MAGIC, VERSION_2];
        bytes.extend(with_length(VERSION_2, &body));
        assert_eq!(parse(&bytes).unwrap().entries[0].kvno, 5);
    }

    #[test]
    fn a_field_cannot_reach_into_the_next_record() {
        let single = fixture("single.keytab");
        // Shorten the record length by five (the 4-byte kvno trailer and one
        // key byte): the key now ends past the record, though the file has
        // the byte.
        let mut bytes = single.clone();
        let len = i32::from_be_bytes(bytes[2..6].try_into().unwrap());
        bytes[2..6].copy_from_slice(&(len - 5).to_be_bytes());
        let err = parse(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                KeytabFormatError::Truncated {
                    within: "its record",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("the key"), "{err}");
    }

    #[test]
    fn malformed_headers_and_names() {
        assert_eq!(parse(b"").unwrap_err(), KeytabFormatError::Empty);
        assert_eq!(
            parse(b"\x06\x02").unwrap_err(),
            KeytabFormatError::NotAKeytab(6)
        );
        assert_eq!(
            parse(b"\x05\x03").unwrap_err(),
            KeytabFormatError::UnsupportedVersion(3)
        );
        assert!(matches!(
            parse(b"\x05"),
            Err(KeytabFormatError::Truncated { .. })
        ));
        assert_eq!(parse(b"\x05\x02").unwrap().entries.len(), 0);

        let empty_component = Principal {
            components: vec![b"alice".to_vec(), Vec::new()],
            ..alice()
        };
        let no_components = Principal {
            components: Vec::new(),
            ..alice()
        };
        for (p, key, reason) in [
            (&empty_component, &[1u8; 16][..], "zero or negative length"),
            (&no_components, &[1u8; 16][..], "no name components"),
            (&alice(), &[][..], "the key has a zero"),
        ] {
            let mut bytes = vec![MAGIC, VERSION_2];
            bytes.extend(with_length(VERSION_2, &record(VERSION_2, p, 1, 18, key)));
            let err = parse(&bytes).unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
        }
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let bytes = fixture("multi.keytab");
        let full = parse(&bytes).unwrap().entries.len();
        let mut boundaries = 0;
        for cut in 0..bytes.len() {
            match parse(&bytes[..cut]) {
                // Only a cut exactly between records parses, with fewer entries.
                Ok(keytab) => {
                    assert!(keytab.entries.len() < full, "cut {cut}");
                    boundaries += 1;
                }
                Err(KeytabFormatError::Empty | KeytabFormatError::Truncated { .. }) => {}
                Err(other) => panic!("cut {cut}: {other:?}"),
            }
        }
        // The header alone and after each of the first three records.
        assert_eq!(boundaries, 4);
    }

    #[test]
    fn corrupted_and_random_inputs_never_panic() {
        let bytes = fixture("multi.keytab");
        for i in 0..bytes.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[i] = value;
                let _ = parse(&corrupt);
            }
        }
        // A small xorshift generator: deterministic, no dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 200) as usize;
            let mut data = vec![MAGIC, if state & 1 == 0 { 1 } else { 2 }];
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                data.push(state as u8);
            }
            let _ = parse(&data);
        }
    }

    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> Self {
            TestDir(nix::unistd::mkdtemp("/tmp/pamkrb-keytab-XXXXXX").expect("mkdtemp"))
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn read_reports_owner_mode_and_entries() {
        let dir = TestDir::new();
        let path = dir.0.join("alice.keytab");
        std::fs::write(&path, fixture("single.keytab")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let file = read(&path).unwrap();
        assert_eq!(file.mode, 0o640);
        assert_eq!(file.size, 78);
        assert_eq!(file.owner_uid, nix::unistd::geteuid().as_raw());
        assert_eq!(file.keytab.entries.len(), 1);
    }

    #[test]
    fn read_refuses_symlinked_directory_oversize_and_garbage() {
        let dir = TestDir::new();
        // `.k -> /etc`: the last component is innocent, the middle one is not.
        symlink("/etc", dir.0.join(".k")).unwrap();
        let err = read(&dir.0.join(".k").join("krb5.keytab")).unwrap_err();
        assert!(
            matches!(err, KeytabError::File(SafePathError::SymlinkInPath { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains(".k is a symbolic link"), "{err}");

        let big = dir.0.join("big.keytab");
        let mut bytes = fixture("single.keytab");
        bytes.resize(MAX_KEYTAB_BYTES + 1, 0);
        std::fs::write(&big, &bytes).unwrap();
        let err = read(&big).unwrap_err();
        assert!(
            matches!(err, KeytabError::File(SafePathError::TooLarge { .. })),
            "{err:?}"
        );

        let garbage = dir.0.join("garbage.keytab");
        std::fs::write(&garbage, b"not a keytab").unwrap();
        let err = read(&garbage).unwrap_err().to_string();
        assert!(
            err.ends_with("is not a keytab (first byte 0x6e, expected 0x05)"),
            "{err}"
        );

        let err = read(&dir.0.join("missing.keytab")).unwrap_err();
        assert!(matches!(err, KeytabError::Missing { .. }), "{err:?}");
        assert!(err.to_string().ends_with("does not exist"), "{err}");
    }

    #[test]
    fn no_key_message_lists_what_the_keytab_holds() {
        let keytab = parse(&fixture("multi.keytab")).unwrap();
        let err = KeytabError::no_key_for(Path::new("/k"), "carol@FIXTURE.TEST", &keytab);
        assert_eq!(
            err.to_string(),
            "keytab /k has no key for carol@FIXTURE.TEST; it holds keys for \
             alice@FIXTURE.TEST, alice/pg-dmp-workbench2@FIXTURE.TEST, bob@OTHER.TEST"
        );
        let empty = parse(b"\x05\x02").unwrap();
        let err = KeytabError::no_key_for(Path::new("/k"), "a@R", &empty);
        assert!(err.to_string().ends_with("; it holds no keys"), "{err}");
    }
}
