//! The MIT Kerberos FILE credential cache format ("ccache"), versions 3 and 4.
//!
//! Pure Rust with no krb5 library or context: the hub reads a user's cache
//! each time it decides whether the ticket needs renewing (a spawn, a broker
//! round, a delivery), and the user's server whenever the cache changed
//! before a status poll or a refresh check, so reading one must cost
//! microseconds, not the milliseconds a krb5 context takes to load its
//! profile. The format is
//! documented in MIT krb5's `doc/formats/ccache_file_format.rst`; the
//! reference implementation is `src/lib/krb5/ccache/cc_file.c`.
//!
//! The file is untrusted input (users own their caches), so the parser checks
//! every length against the bytes that remain before allocating, caps counts
//! that would otherwise multiply work, and never panics. Anything it accepts
//! is in canonical form, so [`serialize`] reproduces the input byte for byte.

// Versions 1 and 2 used native byte order and a different principal layout;
// MIT krb5 has not written them since the 1990s.
const VERSION_3: u16 = 0x0503;
const VERSION_4: u16 = 0x0504;

/// Most credentials a cache may hold. Real caches hold a TGT, a few config
/// entries and some service tickets; ten thousand means something is wrong.
const MAX_CREDENTIALS: usize = 10_000;

/// Most name components a principal may have. Real principals have one to
/// three; the cap keeps a hostile count from driving the parse loop.
const MAX_COMPONENTS: usize = 64;

/// Realm of the pseudo-principals that carry cache configuration entries
/// (`fast_avail`, `pa_type`, ...) instead of tickets.
const CONFIG_REALM: &[u8] = b"X-CACHECONF:";

/// `KRB5_NT_PRINCIPAL`: the name type `krb5_parse_name` gives a user.
const KRB5_NT_PRINCIPAL: i32 = 1;

/// `TKT_FLG_RENEWABLE`: the KDC will renew the ticket until `renew_till`.
pub const TKT_FLG_RENEWABLE: u32 = 0x0080_0000;

/// Longest principal name an error message carries, in characters: the name
/// comes from a user-owned file and ends up in the hub's log.
const MAX_NAME_IN_ERROR: usize = 256;

/// A Kerberos principal name as stored in a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `KRB5_NT_*` name type, e.g. 1 for `KRB5_NT_PRINCIPAL`.
    pub name_type: i32,
    /// The realm, e.g. `b"EXAMPLE.ORG"`.
    pub realm: Vec<u8>,
    /// The name components, e.g. `[b"alice", b"admin"]` for `alice/admin`.
    pub components: Vec<Vec<u8>>,
}

impl Principal {
    /// Formats the principal as `comp1/comp2@REALM`, like `krb5_unparse_name`:
    /// separators and backslashes inside a name are escaped with a backslash,
    /// and bytes that are not UTF-8 become U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        let mut name = String::new();
        for (i, component) in self.components.iter().enumerate() {
            if i > 0 {
                name.push('/');
            }
            push_escaped(&mut name, component, true);
        }
        name.push('@');
        push_escaped(&mut name, &self.realm, false);
        name
    }

    fn is_config(&self) -> bool {
        self.realm == CONFIG_REALM
    }

    /// Whether `self` and `other` name the same principal, as
    /// `krb5_principal_compare` decides: realm and components, byte for
    /// byte; the name type does not count. The one principal comparison in
    /// pamkrb: caches, keytabs and the bindings all call it.
    pub fn same_as(&self, other: &Principal) -> bool {
        self.realm == other.realm && self.components == other.components
    }

    /// Parses `name` as `krb5_parse_name` does, without a krb5 context, when
    /// that is unambiguous: a non-empty realm after the first unescaped `@`,
    /// non-empty components split at unescaped `/`, the escapes `\n`, `\t`,
    /// `\b`, `\0` and `\<c>` for `<c>`. `None` for anything else (no realm,
    /// so the default realm applies; an empty component; a `/`, `@` or
    /// trailing backslash in the realm), which the caller hands to libkrb5:
    /// this is a fast path, never a second opinion. The name type is
    /// `KRB5_NT_PRINCIPAL`; [`Principal::same_as`] ignores it.
    pub fn parse_with_realm(name: &str) -> Option<Principal> {
        let mut components = vec![Vec::new()];
        let mut realm: Option<Vec<u8>> = None;
        let mut bytes = name.bytes();
        while let Some(byte) = bytes.next() {
            let byte = match byte {
                b'\\' => match bytes.next()? {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'0' => 0,
                    other => other,
                },
                b'@' | b'/' if realm.is_some() => return None,
                b'@' => {
                    realm = Some(Vec::new());
                    continue;
                }
                b'/' => {
                    components.push(Vec::new());
                    continue;
                }
                other => other,
            };
            match &mut realm {
                Some(realm) => realm.push(byte),
                None => components.last_mut()?.push(byte),
            }
        }
        let realm = realm.filter(|realm| !realm.is_empty())?;
        if components.iter().any(Vec::is_empty) || components.len() > MAX_COMPONENTS {
            return None;
        }
        Some(Principal {
            name_type: KRB5_NT_PRINCIPAL,
            realm,
            components,
        })
    }
}

/// Appends `bytes` with the escapes `krb5_unparse_name` uses, so that the
/// result parses back to the same principal. A `/` only needs escaping inside
/// a name component, not in the realm.
fn push_escaped(out: &mut String, bytes: &[u8], is_component: bool) {
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '@' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '/' if is_component => out.push_str("\\/"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{8}' => out.push_str("\\b"),
            _ => out.push(c),
        }
    }
}

/// A session key. Its bytes are wiped on drop and never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyblock {
    /// Encryption type, e.g. 18 for aes256-cts-hmac-sha1-96.
    pub enctype: u16,
    /// The raw key.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Keyblock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyblock")
            .field("enctype", &self.enctype)
            .field(
                "data",
                &format_args!("<{} bytes redacted>", self.data.len()),
            )
            .finish()
    }
}

impl Drop for Keyblock {
    fn drop(&mut self) {
        crate::secret::wipe(&mut self.data);
    }
}

/// A typed byte string: a v4 header field (tag), a ticket address (addrtype)
/// or an authorization-data element (ad_type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedData {
    /// The tag, address type or authorization-data type.
    pub tag: u16,
    /// The value.
    pub data: Vec<u8>,
}

/// One cache entry: a ticket with its session key, or a configuration entry
/// (server realm `X-CACHECONF:`, value in `ticket`, everything else zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The principal the ticket was issued to.
    pub client: Principal,
    /// The service the ticket is for, e.g. `krbtgt/REALM@REALM`.
    pub server: Principal,
    /// The session key.
    pub keyblock: Keyblock,
    /// Time of the initial authentication, in seconds since the epoch.
    /// All four times are unsigned, as in krb5 1.17 and later, so they stay
    /// valid after 2038.
    pub authtime: u32,
    /// Start of validity; 0 means "same as `authtime`".
    pub starttime: u32,
    /// End of validity.
    pub endtime: u32,
    /// Latest time the ticket can be renewed to; 0 when not renewable.
    pub renew_till: u32,
    /// Whether the ticket is encrypted in another ticket's session key
    /// (user-to-user).
    pub is_skey: bool,
    /// `TKT_FLG_*` bits.
    pub ticket_flags: u32,
    /// Client addresses the ticket is bound to, usually none.
    pub addresses: Vec<TaggedData>,
    /// Authorization data.
    pub authdata: Vec<TaggedData>,
    /// The DER-encoded ticket (or a configuration value).
    pub ticket: Vec<u8>,
    /// The second ticket of a user-to-user exchange, usually empty.
    pub second_ticket: Vec<u8>,
}

/// A whole credential cache file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialCache {
    /// File format version: 0x0503 or 0x0504.
    pub version: u16,
    /// Version 4 header fields, e.g. tag 1 = KDC time offset (seconds and
    /// microseconds). Always empty for version 3.
    pub header: Vec<TaggedData>,
    /// The principal the cache belongs to.
    pub default_principal: Principal,
    /// The entries, in file order.
    pub credentials: Vec<Credential>,
}

/// What the hub needs to know about a user's tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInfo {
    /// The default principal, as `name@REALM`.
    pub principal: String,
    /// The same, parsed: what [`TicketInfo::is_for`] compares.
    pub default_principal: Principal,
    /// When the ticket-granting ticket became valid, in seconds since the epoch.
    pub starts_at: u32,
    /// When it expires.
    pub expires_at: u32,
    /// Until when it can be renewed; `None` when it is not renewable.
    pub renew_until: Option<u32>,
    /// Whether the KDC marked it renewable (flag R). Without the flag a
    /// `renew_until` means nothing: the KDC refuses the renewal.
    pub renewable: bool,
}

impl TicketInfo {
    /// Whether the ticket is `principal`'s (see [`Principal::same_as`]).
    pub fn is_for(&self, principal: &Principal) -> bool {
        self.default_principal.same_as(principal)
    }

    /// Whether the KDC would renew the TGT at `now`, by the rule
    /// [`Credential::renewal_at`] applies to the TGT itself.
    pub fn renewal_at(&self, now: u32) -> Result<(), NotRenewable> {
        renewal_at(
            self.renewable,
            self.renew_until.unwrap_or(0),
            self.expires_at,
            now,
        )
    }
}

/// Why a credential cache could not be read or used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CcacheError {
    /// The file ends, or a length field points, past the end of the data.
    #[error(
        "credential cache is truncated or corrupt: {wanted} bytes needed at \
         offset {offset}, but the file ends first"
    )]
    Truncated {
        /// Byte offset of the field that does not fit.
        offset: usize,
        /// How many bytes the field needs.
        wanted: usize,
    },
    /// Not a version 3 or 4 FILE cache.
    #[error(
        "credential cache has format version {0:#06x}; only 0x0503 and 0x0504 \
         are supported (is this a FILE cache written by MIT krb5 or Heimdal?)"
    )]
    UnsupportedVersion(u16),
    /// A count exceeds a sanity limit.
    #[error("credential cache is malformed: {count} {what}, more than the limit of {limit}")]
    TooLarge {
        /// What was counted, e.g. "credentials".
        what: &'static str,
        /// The count found in the file; for credentials, the limit plus one
        /// (parsing stops there).
        count: u64,
        /// The largest count accepted.
        limit: u64,
    },
    /// A field holds a value the format does not allow.
    #[error("credential cache is malformed at offset {offset}: {reason}")]
    Malformed {
        /// Byte offset of the offending field.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The cache holds no initial ticket-granting ticket for its principal.
    #[error(
        "credential cache of {principal} holds no ticket-granting ticket; \
         the user needs to log in again"
    )]
    NoTicketGrantingTicket {
        /// The default principal, shortened for the log.
        principal: String,
    },
}

/// Reads a credential cache from the contents of a FILE cache.
///
/// Accepts versions 0x0503 and 0x0504. Fails on truncated or trailing partial
/// entries, on more than 10,000 credentials or 64 components in a name, and on
/// non-canonical encodings, so that `serialize(&parse(b)?) == b`.
pub fn parse(bytes: &[u8]) -> Result<CredentialCache, CcacheError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u16()?;
    if version != VERSION_3 && version != VERSION_4 {
        return Err(CcacheError::UnsupportedVersion(version));
    }
    let header = if version == VERSION_4 {
        read_header(&mut r)?
    } else {
        Vec::new()
    };
    let default_principal = r.principal()?;
    let mut credentials = Vec::new();
    // There is no count or end marker: credentials run until the end of file.
    while !r.is_empty() {
        if credentials.len() == MAX_CREDENTIALS {
            return Err(CcacheError::TooLarge {
                what: "credentials",
                count: MAX_CREDENTIALS as u64 + 1,
                limit: MAX_CREDENTIALS as u64,
            });
        }
        credentials.push(r.credential(version)?);
    }
    Ok(CredentialCache {
        version,
        header,
        default_principal,
        credentials,
    })
}

fn read_header(r: &mut Reader<'_>) -> Result<Vec<TaggedData>, CcacheError> {
    let length = usize::from(r.u16()?);
    let start = r.pos;
    r.take(length)?;
    // Read the fields from a reader that ends with the header, so a field
    // overrunning the header is caught even though the file continues.
    let mut h = Reader {
        bytes: r.bytes.get(..r.pos).unwrap_or_default(),
        pos: start,
    };
    let mut header = Vec::new();
    while !h.is_empty() {
        let offset = h.pos;
        let overrun = |_| CcacheError::Malformed {
            offset,
            reason: "a header field runs past the end of the header",
        };
        let tag = h.u16().map_err(overrun)?;
        let len = usize::from(h.u16().map_err(overrun)?);
        let data = h.take(len).map_err(overrun)?.to_vec();
        header.push(TaggedData { tag, data });
    }
    Ok(header)
}

/// A cursor over untrusted bytes; every read checks the remaining length.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CcacheError> {
        let slice = self
            .bytes
            .get(self.pos..)
            .and_then(|rest| rest.get(..n))
            .ok_or(CcacheError::Truncated {
                offset: self.pos,
                wanted: n,
            })?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CcacheError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let array = *rest.first_chunk::<N>().ok_or(CcacheError::Truncated {
            offset: self.pos,
            wanted: N,
        })?;
        self.pos += N;
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, CcacheError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, CcacheError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, CcacheError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A 32-bit length followed by that many bytes. `take` checks the length
    /// against the input before `to_vec` allocates, so a length of 0xffffffff
    /// is an error rather than a 4 GiB allocation.
    fn data(&mut self) -> Result<Vec<u8>, CcacheError> {
        let length = self.u32()?;
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        Ok(self.take(length)?.to_vec())
    }

    fn principal(&mut self) -> Result<Principal, CcacheError> {
        let name_type = i32::from_be_bytes(self.array()?);
        let count = self.u32()?;
        if count as usize > MAX_COMPONENTS {
            return Err(CcacheError::TooLarge {
                what: "principal name components",
                count: count.into(),
                limit: MAX_COMPONENTS as u64,
            });
        }
        let realm = self.data()?;
        let components = (0..count).map(|_| self.data()).collect::<Result<_, _>>()?;
        Ok(Principal {
            name_type,
            realm,
            components,
        })
    }

    /// A 32-bit count followed by that many tagged values. The vector grows
    /// as elements are read: each needs at least six bytes, so its size is
    /// bounded by the input, not by the count.
    fn tagged_list(&mut self) -> Result<Vec<TaggedData>, CcacheError> {
        let count = self.u32()?;
        let mut list = Vec::new();
        for _ in 0..count {
            let tag = self.u16()?;
            let data = self.data()?;
            list.push(TaggedData { tag, data });
        }
        Ok(list)
    }

    fn keyblock(&mut self, version: u16) -> Result<Keyblock, CcacheError> {
        let offset = self.pos;
        let enctype = self.u16()?;
        // Version 3 stores the enctype twice (a leftover of the old keytype
        // field). MIT writes the same value both times; a mismatch could not
        // be written back unchanged, so it is refused.
        if version == VERSION_3 && self.u16()? != enctype {
            return Err(CcacheError::Malformed {
                offset,
                reason: "the two enctype fields of a version 3 keyblock differ",
            });
        }
        let data = self.data()?;
        Ok(Keyblock { enctype, data })
    }

    fn credential(&mut self, version: u16) -> Result<Credential, CcacheError> {
        let client = self.principal()?;
        let server = self.principal()?;
        let keyblock = self.keyblock(version)?;
        let authtime = self.u32()?;
        let starttime = self.u32()?;
        let endtime = self.u32()?;
        let renew_till = self.u32()?;
        let skey_offset = self.pos;
        let is_skey = match self.u8()? {
            0 => false,
            1 => true,
            _ => {
                return Err(CcacheError::Malformed {
                    offset: skey_offset,
                    reason: "the is_skey flag is neither 0 nor 1",
                });
            }
        };
        let ticket_flags = self.u32()?;
        let addresses = self.tagged_list()?;
        let authdata = self.tagged_list()?;
        let ticket = self.data()?;
        let second_ticket = self.data()?;
        Ok(Credential {
            client,
            server,
            keyblock,
            authtime,
            starttime,
            endtime,
            renew_till,
            is_skey,
            ticket_flags,
            addresses,
            authdata,
            ticket,
            second_ticket,
        })
    }
}

/// Encodes a credential cache in the format `cache.version` names: version 3
/// layout for 0x0503, version 4 layout (with the header fields) otherwise.
///
/// # Panics
///
/// If a field is longer than the format can express: a header over 65,535
/// bytes in total, or a name, key, ticket or list over 4 GiB. Caches returned
/// by [`parse`] never are.
pub fn serialize(cache: &CredentialCache) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(1024));
    w.u16(cache.version);
    if cache.version != VERSION_3 {
        let length: usize = cache.header.iter().map(|f| 4 + f.data.len()).sum();
        w.u16(u16_len(length));
        for field in &cache.header {
            w.u16(field.tag);
            w.u16(u16_len(field.data.len()));
            w.0.extend_from_slice(&field.data);
        }
    }
    w.principal(&cache.default_principal);
    for cred in &cache.credentials {
        w.principal(&cred.client);
        w.principal(&cred.server);
        w.u16(cred.keyblock.enctype);
        if cache.version == VERSION_3 {
            w.u16(cred.keyblock.enctype);
        }
        w.data(&cred.keyblock.data);
        for time in [cred.authtime, cred.starttime, cred.endtime, cred.renew_till] {
            w.u32(time);
        }
        w.0.push(u8::from(cred.is_skey));
        w.u32(cred.ticket_flags);
        w.tagged_list(&cred.addresses);
        w.tagged_list(&cred.authdata);
        w.data(&cred.ticket);
        w.data(&cred.second_ticket);
    }
    w.0
}

fn u16_len(length: usize) -> u16 {
    u16::try_from(length).expect("credential cache header field longer than 65,535 bytes")
}

fn u32_len(length: usize) -> u32 {
    u32::try_from(length).expect("credential cache field longer than 4 GiB")
}

struct Writer(Vec<u8>);

impl Writer {
    fn u16(&mut self, value: u16) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn data(&mut self, data: &[u8]) {
        self.u32(u32_len(data.len()));
        self.0.extend_from_slice(data);
    }

    fn principal(&mut self, principal: &Principal) {
        self.0.extend_from_slice(&principal.name_type.to_be_bytes());
        self.u32(u32_len(principal.components.len()));
        self.data(&principal.realm);
        for component in &principal.components {
            self.data(component);
        }
    }

    fn tagged_list(&mut self, list: &[TaggedData]) {
        self.u32(u32_len(list.len()));
        for item in list {
            self.u16(item.tag);
            self.data(&item.data);
        }
    }
}

impl Credential {
    /// A cache configuration entry rather than a ticket.
    pub fn is_config_entry(&self) -> bool {
        self.server.is_config()
    }

    /// Whether the ticket carries the renewable flag.
    pub fn is_renewable(&self) -> bool {
        self.ticket_flags & TKT_FLG_RENEWABLE != 0
    }

    /// Whether the KDC would renew this ticket at `now` (see [`renewal_at`]).
    pub fn renewal_at(&self, now: u32) -> Result<(), NotRenewable> {
        renewal_at(self.is_renewable(), self.renew_till, self.endtime, now)
    }
}

/// Why the KDC would not renew a ticket-granting ticket at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRenewable {
    /// No renewable flag, or no `renew_till`.
    NotIssuedRenewable,
    /// Renewable, but only until this time, which has passed.
    WindowClosed { renew_until: u32 },
    /// Expired at this time: the KDC renews only a valid ticket (RFC 4120
    /// 3.3.3.1).
    Expired { expired_at: u32 },
}

/// The one renewability rule, for a cache's TGT and for its [`TicketInfo`]:
/// issued renewable (flag R and a `renew_till`), the renewal window still
/// open at `now`, and the ticket still valid at `now`.
pub fn renewal_at(flag: bool, renew_till: u32, endtime: u32, now: u32) -> Result<(), NotRenewable> {
    if !flag || renew_till == 0 {
        Err(NotRenewable::NotIssuedRenewable)
    } else if now >= renew_till {
        Err(NotRenewable::WindowClosed {
            renew_until: renew_till,
        })
    } else if now >= endtime {
        Err(NotRenewable::Expired {
            expired_at: endtime,
        })
    } else {
        Ok(())
    }
}

impl CredentialCache {
    /// The cache after a renewal of its TGT, as `kinit -R` leaves it: same
    /// version, header (the KDC time offset) and default principal, the old
    /// tickets gone and `renewed` in their place. Unlike `kinit -R`, the
    /// configuration entries stay: they describe the KDC (`fast_avail`,
    /// `pa_type`), which a renewal does not change.
    pub fn renewed(&self, renewed: Credential) -> CredentialCache {
        let mut credentials: Vec<Credential> = self
            .credentials
            .iter()
            .filter(|cred| cred.is_config_entry())
            .cloned()
            .collect();
        credentials.push(renewed);
        CredentialCache {
            version: self.version,
            header: self.header.clone(),
            default_principal: self.default_principal.clone(),
            credentials,
        }
    }

    /// A version 4 cache with an empty header.
    pub fn new(default_principal: Principal, credentials: Vec<Credential>) -> Self {
        CredentialCache {
            version: VERSION_4,
            header: Vec::new(),
            default_principal,
            credentials,
        }
    }

    /// The initial ticket-granting ticket of the default principal: client is
    /// the default principal, server is `krbtgt/<client realm>@<client realm>`.
    /// Configuration entries, service tickets and cross-realm TGTs are skipped.
    ///
    /// When a cache holds several, the one that expires last wins: a renewal
    /// stored without reinitializing the cache leaves the old TGT in place.
    pub fn ticket_granting_ticket(&self) -> Option<&Credential> {
        let client = &self.default_principal;
        self.credentials
            .iter()
            .filter(|cred| {
                let server = &cred.server;
                cred.client == *client
                    && !server.is_config()
                    && server.realm == client.realm
                    && server.components.len() == 2
                    && server.components.first().is_some_and(|c| c == b"krbtgt")
                    && server.components.get(1) == Some(&client.realm)
            })
            // `rev` so that `max_by_key`, which keeps the last maximum, picks
            // the first of equally long-lived TGTs.
            .rev()
            .max_by_key(|cred| cred.endtime)
    }

    /// Principal and lifetime of the ticket-granting ticket.
    pub fn ticket_info(&self) -> Result<TicketInfo, CcacheError> {
        let principal = self.default_principal.to_string_lossy();
        let Some(tgt) = self.ticket_granting_ticket() else {
            return Err(CcacheError::NoTicketGrantingTicket {
                principal: shorten(principal),
            });
        };
        Ok(TicketInfo {
            principal,
            default_principal: self.default_principal.clone(),
            starts_at: if tgt.starttime == 0 {
                tgt.authtime
            } else {
                tgt.starttime
            },
            expires_at: tgt.endtime,
            renew_until: (tgt.renew_till != 0).then_some(tgt.renew_till),
            renewable: tgt.is_renewable(),
        })
    }
}

pub(crate) fn shorten(mut name: String) -> String {
    if let Some((cut, _)) = name.char_indices().nth(MAX_NAME_IN_ERROR) {
        name.truncate(cut);
        name.push('…');
    }
    name
}

/// [`parse`] followed by [`CredentialCache::ticket_info`].
///
/// There is no separate fast path: a full parse of a typical 1-2 KB cache
/// takes 1-2 µs (measured in release mode on a 2-vCPU Xeon VM, about as long
/// as reading the file), and it validates the whole file, so a corrupt cache
/// is reported as such rather than half-read.
pub fn inspect_bytes(bytes: &[u8]) -> Result<TicketInfo, CcacheError> {
    parse(bytes)?.ticket_info()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4_KINIT_KEYTAB: &[u8] = include_bytes!("../tests/data/ccache/v4-kinit-keytab");
    const V4_RENEWABLE: &[u8] = include_bytes!("../tests/data/ccache/v4-renewable");
    const V4_TWO_COMPONENTS: &[u8] = include_bytes!("../tests/data/ccache/v4-two-components");
    const V4_SERVICE_TICKET: &[u8] = include_bytes!("../tests/data/ccache/v4-service-ticket");
    const V3_KINIT_KEYTAB: &[u8] = include_bytes!("../tests/data/ccache/v3-kinit-keytab");

    const FIXTURES: [(&str, &[u8]); 5] = [
        ("v4-kinit-keytab", V4_KINIT_KEYTAB),
        ("v4-renewable", V4_RENEWABLE),
        ("v4-two-components", V4_TWO_COMPONENTS),
        ("v4-service-ticket", V4_SERVICE_TICKET),
        ("v3-kinit-keytab", V3_KINIT_KEYTAB),
    ];

    // From tests/data/ccache/klist.txt: every fixture was made in the same
    // second and has a 10-hour TGT.
    const STARTS: u32 = 1_795_697_631;
    const EXPIRES: u32 = 1_795_733_631;
    const RENEW_UNTIL: u32 = 1_795_870_431;
    const AES256_CTS_HMAC_SHA1_96: u16 = 18;

    fn principal(components: &[&str], realm: &str) -> Principal {
        Principal {
            name_type: KRB5_NT_PRINCIPAL,
            realm: realm.as_bytes().to_vec(),
            components: components.iter().map(|c| c.as_bytes().to_vec()).collect(),
        }
    }

    fn names(cache: &CredentialCache) -> Vec<String> {
        cache
            .credentials
            .iter()
            .map(|c| c.server.to_string_lossy())
            .collect()
    }

    fn config_entry(client: &Principal, key: &str, value: &[u8]) -> Credential {
        Credential {
            client: client.clone(),
            server: principal(
                &[
                    "krb5_ccache_conf_data",
                    key,
                    "krbtgt/EXAMPLE.ORG@EXAMPLE.ORG",
                ],
                "X-CACHECONF:",
            ),
            keyblock: Keyblock {
                enctype: 0,
                data: Vec::new(),
            },
            authtime: 0,
            starttime: 0,
            endtime: 0,
            renew_till: 0,
            is_skey: false,
            ticket_flags: 0,
            addresses: Vec::new(),
            authdata: Vec::new(),
            ticket: value.to_vec(),
            second_ticket: Vec::new(),
        }
    }

    fn ticket(client: &Principal, server: Principal, endtime: u32) -> Credential {
        Credential {
            server,
            keyblock: Keyblock {
                enctype: AES256_CTS_HMAC_SHA1_96,
                data: vec![7; 32],
            },
            authtime: 1000,
            starttime: 0,
            endtime,
            renew_till: 0,
            ticket: vec![0x61, 0x03, 0x02, 0x01, 0x05],
            ..config_entry(client, "unused", b"")
        }
    }

    /// Byte offsets at which a prefix of `cache` is itself a complete cache
    /// (after the default principal and after each credential), with the
    /// cache that prefix holds.
    fn complete_prefixes(cache: &CredentialCache) -> Vec<(usize, CredentialCache)> {
        (0..=cache.credentials.len())
            .map(|n| {
                let prefix = CredentialCache {
                    credentials: cache.credentials[..n].to_vec(),
                    ..cache.clone()
                };
                (serialize(&prefix).len(), prefix)
            })
            .collect()
    }

    #[test]
    fn keyblock_debug_redacts_the_key() {
        let key = Keyblock {
            enctype: 18,
            data: vec![0xAB; 32],
        };
        let shown = format!("{key:?}");
        assert!(shown.contains("32 bytes redacted"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn kinit_keytab_cache() {
        let cache = parse(V4_KINIT_KEYTAB).unwrap();
        let alice = principal(&["alice"], "FIXTURE.TEST");
        assert_eq!(cache.version, 0x0504);
        // kinit records the KDC time offset, zero here: KDC and client share a clock.
        assert_eq!(
            cache.header,
            [TaggedData {
                tag: 1,
                data: vec![0; 8]
            }]
        );
        assert_eq!(cache.default_principal, alice);
        assert_eq!(
            names(&cache),
            [
                "krb5_ccache_conf_data/fast_avail/krbtgt\\/FIXTURE.TEST\\@FIXTURE.TEST@X-CACHECONF:",
                "krb5_ccache_conf_data/pa_type/krbtgt\\/FIXTURE.TEST\\@FIXTURE.TEST@X-CACHECONF:",
                "krbtgt/FIXTURE.TEST@FIXTURE.TEST",
            ]
        );
        assert_eq!(cache.credentials[0].ticket, b"yes");
        assert_eq!(cache.credentials[1].ticket, b"2");
        let tgt = cache.ticket_granting_ticket().unwrap();
        assert!(std::ptr::eq(tgt, &cache.credentials[2]));
        assert_eq!(tgt.client, alice);
        assert_eq!(tgt.keyblock.enctype, AES256_CTS_HMAC_SHA1_96);
        assert_eq!(tgt.keyblock.data.len(), 32);
        assert_eq!((tgt.authtime, tgt.starttime), (STARTS, STARTS));
        assert_eq!((tgt.endtime, tgt.renew_till), (EXPIRES, 0));
        assert!(!tgt.is_skey);
        assert_eq!(tgt.ticket_flags & TKT_FLG_RENEWABLE, 0);
        assert_eq!(
            inspect_bytes(V4_KINIT_KEYTAB),
            Ok(TicketInfo {
                principal: "alice@FIXTURE.TEST".into(),
                default_principal: principal(&["alice"], "FIXTURE.TEST"),
                starts_at: STARTS,
                expires_at: EXPIRES,
                renew_until: None,
                renewable: false,
            })
        );
    }

    #[test]
    fn renewable_cache() {
        let cache = parse(V4_RENEWABLE).unwrap();
        assert_eq!(cache.default_principal, principal(&["bob"], "FIXTURE.TEST"));
        let tgt = cache.ticket_granting_ticket().unwrap();
        assert_ne!(tgt.ticket_flags & TKT_FLG_RENEWABLE, 0);
        assert_eq!(
            cache.ticket_info(),
            Ok(TicketInfo {
                principal: "bob@FIXTURE.TEST".into(),
                default_principal: principal(&["bob"], "FIXTURE.TEST"),
                starts_at: STARTS,
                expires_at: EXPIRES,
                renew_until: Some(RENEW_UNTIL),
                renewable: true,
            })
        );
    }

    #[test]
    fn an_unparsed_principal_parses_back_to_itself() {
        for (components, realm) in [
            (&["alice"][..], "EXAMPLE.ORG"),
            (&["host", "node1.example.org"][..], "EXAMPLE.ORG"),
            (&["a/b", "c@d", "e\\f"][..], "EXAMPLE.ORG"),
            (&["tab\tnl\nbs\u{8}nul\0"][..], "R\\E@ALM"),
        ] {
            let original = principal(components, realm);
            let name = original.to_string_lossy();
            let parsed = Principal::parse_with_realm(&name).unwrap_or_else(|| panic!("{name}"));
            assert!(parsed.same_as(&original), "{name}: {parsed:?}");
        }
        // The name type does not count; realm and every component do.
        let mut other_type = principal(&["alice"], "R");
        other_type.name_type = 2;
        assert!(other_type.same_as(&principal(&["alice"], "R")));
        assert!(!principal(&["alice"], "R").same_as(&principal(&["alice"], "S")));
        assert!(!principal(&["alice"], "R").same_as(&principal(&["alice", ""], "R")));
    }

    #[test]
    fn renewability_is_one_rule_for_the_tgt_and_its_info() {
        let cache = parse(V4_RENEWABLE).unwrap();
        let tgt = cache.ticket_granting_ticket().unwrap();
        let info = cache.ticket_info().unwrap();
        for (now, expected) in [
            (STARTS, Ok(())),
            (EXPIRES - 1, Ok(())),
            (
                EXPIRES,
                Err(NotRenewable::Expired {
                    expired_at: EXPIRES,
                }),
            ),
            (
                RENEW_UNTIL,
                Err(NotRenewable::WindowClosed {
                    renew_until: RENEW_UNTIL,
                }),
            ),
        ] {
            assert_eq!(tgt.renewal_at(now), expected, "{now}");
            assert_eq!(info.renewal_at(now), expected, "{now}");
        }
        let plain = parse(V4_KINIT_KEYTAB).unwrap();
        assert_eq!(
            plain.ticket_granting_ticket().unwrap().renewal_at(STARTS),
            Err(NotRenewable::NotIssuedRenewable)
        );
        assert_eq!(
            plain.ticket_info().unwrap().renewal_at(STARTS),
            Err(NotRenewable::NotIssuedRenewable)
        );
        // A renew_till without the flag: the KDC refuses, and so do we.
        assert_eq!(
            renewal_at(false, RENEW_UNTIL, EXPIRES, STARTS),
            Err(NotRenewable::NotIssuedRenewable)
        );
    }

    #[test]
    fn a_renewal_replaces_the_tickets_and_keeps_the_configuration() {
        let cache = parse(V4_SERVICE_TICKET).unwrap();
        let mut tgt = cache.ticket_granting_ticket().unwrap().clone();
        tgt.endtime += 60;
        let renewed = cache.renewed(tgt.clone());
        assert_eq!(renewed.header, cache.header);
        assert_eq!(renewed.default_principal, cache.default_principal);
        assert_eq!(renewed.credentials[..2], cache.credentials[..2]);
        assert_eq!(renewed.credentials[2..], [tgt]);
        assert_eq!(renewed.ticket_info().unwrap().expires_at, EXPIRES + 60);
    }

    #[test]
    fn two_component_principal() {
        let cache = parse(V4_TWO_COMPONENTS).unwrap();
        let owner = principal(&["alice", "pg-dmp-workbench2"], "FIXTURE.TEST");
        assert_eq!(cache.default_principal, owner);
        assert_eq!(cache.ticket_granting_ticket().unwrap().client, owner);
        let info = inspect_bytes(V4_TWO_COMPONENTS).unwrap();
        assert_eq!(info.principal, "alice/pg-dmp-workbench2@FIXTURE.TEST");
        assert_eq!((info.expires_at, info.renew_until), (EXPIRES, None));
    }

    #[test]
    fn service_ticket_is_not_the_tgt() {
        let cache = parse(V4_SERVICE_TICKET).unwrap();
        assert_eq!(
            names(&cache)[2..],
            [
                "krbtgt/FIXTURE.TEST@FIXTURE.TEST",
                "host/kdc.fixture.test@FIXTURE.TEST"
            ]
        );
        let tgt = cache.ticket_granting_ticket().unwrap();
        assert!(std::ptr::eq(tgt, &cache.credentials[2]));

        // Without the TGT, neither config entries nor the service ticket stand in.
        let mut without_tgt = cache.clone();
        without_tgt.credentials.remove(2);
        assert_eq!(without_tgt.ticket_granting_ticket(), None);
        assert_eq!(
            without_tgt.ticket_info(),
            Err(CcacheError::NoTicketGrantingTicket {
                principal: "alice@FIXTURE.TEST".into()
            })
        );
    }

    #[test]
    fn version_3_cache() {
        let cache = parse(V3_KINIT_KEYTAB).unwrap();
        assert_eq!(cache.version, 0x0503);
        assert!(cache.header.is_empty());
        let tgt = cache.ticket_granting_ticket().unwrap();
        assert_eq!(tgt.keyblock.enctype, AES256_CTS_HMAC_SHA1_96);
        assert_eq!(
            inspect_bytes(V3_KINIT_KEYTAB).unwrap(),
            inspect_bytes(V4_KINIT_KEYTAB).unwrap()
        );

        // The same cache converted to version 4 drops the second enctype,
        // gains a header, and reads back the same.
        let mut v4 = cache.clone();
        v4.version = 0x0504;
        let bytes = serialize(&v4);
        assert_eq!(bytes.len(), V3_KINIT_KEYTAB.len() - 2 * 3 + 2);
        assert_eq!(parse(&bytes), Ok(v4));
    }

    #[test]
    fn version_3_enctypes_must_agree() {
        let alice = principal(&["alice"], "EXAMPLE.ORG");
        let tgt = ticket(
            &alice,
            principal(&["krbtgt", "EXAMPLE.ORG"], "EXAMPLE.ORG"),
            5,
        );
        let mut cache = CredentialCache::new(alice, vec![tgt]);
        cache.version = 0x0503;
        let mut bytes = serialize(&cache);
        assert!(parse(&bytes).is_ok());
        // Version, then alice@EXAMPLE.ORG twice (default principal and
        // client), then krbtgt/EXAMPLE.ORG@EXAMPLE.ORG.
        let keyblock = 2 + 2 * (4 + 4 + (4 + 11) + (4 + 5)) + 4 + 4 + (4 + 11) + (4 + 6) + (4 + 11);
        assert_eq!(bytes[keyblock..keyblock + 4], [0, 18, 0, 18]);
        bytes[keyblock + 3] = 17;
        assert!(matches!(
            parse(&bytes),
            Err(CcacheError::Malformed { offset, .. }) if offset == keyblock
        ));
    }

    #[test]
    fn fixtures_round_trip_byte_exact() {
        for (name, bytes) in FIXTURES {
            let cache = parse(bytes).unwrap();
            assert!(serialize(&cache) == bytes, "{name} does not round-trip");
        }
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        for (name, bytes) in FIXTURES {
            let complete = complete_prefixes(&parse(bytes).unwrap());
            // The format has no end marker, so a cut between two entries is
            // a valid, shorter cache; every other cut must be an error.
            for len in 0..bytes.len() {
                let prefix = &bytes[..len];
                match parse(prefix) {
                    Err(CcacheError::Truncated { offset, wanted }) => {
                        assert!(offset + wanted > len, "{name}[..{len}]");
                    }
                    Err(e) => panic!("{name}[..{len}]: unexpected {e:?}"),
                    Ok(cache) => assert!(
                        complete.contains(&(len, cache)),
                        "{name}[..{len}] parsed but is not a whole number of entries"
                    ),
                }
                let _ = inspect_bytes(prefix);
            }
        }
    }

    #[test]
    fn random_corruption_never_panics() {
        // xorshift64: deterministic, so a failure reproduces.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for case in 0..5000 {
            let (name, original) = FIXTURES[case % FIXTURES.len()];
            let mut bytes = original.to_vec();
            for _ in 0..=next() % 3 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] ^= (next() % 255 + 1) as u8;
            }
            if let Ok(cache) = parse(&bytes) {
                // Whatever is accepted is canonical.
                assert!(serialize(&cache) == bytes, "{name} case {case}");
                accepted += 1;
            }
            let _ = inspect_bytes(&bytes);
        }
        // Flips in key, ticket and time bytes leave a valid cache, so both
        // paths are exercised.
        assert!((1000..5000).contains(&accepted), "{accepted}");
    }

    #[test]
    fn huge_lengths_are_errors_not_allocations() {
        // Offsets into the v4 fixtures: version (2), header length (2),
        // header (12), then the default principal.
        let principal_at = 16;
        let realm_length_at = principal_at + 8;
        let mut bytes = V4_KINIT_KEYTAB.to_vec();
        bytes[realm_length_at..realm_length_at + 4].copy_from_slice(&[0xff; 4]);
        assert_eq!(
            parse(&bytes),
            Err(CcacheError::Truncated {
                offset: realm_length_at + 4,
                wanted: 0xffff_ffff
            })
        );

        let mut bytes = V4_KINIT_KEYTAB.to_vec();
        bytes[principal_at + 4..principal_at + 8].copy_from_slice(&[0xff; 4]);
        assert_eq!(
            parse(&bytes),
            Err(CcacheError::TooLarge {
                what: "principal name components",
                count: 0xffff_ffff,
                limit: 64
            })
        );

        // An address count of 2^32 - 1 in the last credential.
        let alice = principal(&["alice"], "EXAMPLE.ORG");
        let tgt = ticket(
            &alice,
            principal(&["krbtgt", "EXAMPLE.ORG"], "EXAMPLE.ORG"),
            5,
        );
        let mut bytes = serialize(&CredentialCache::new(alice, vec![tgt]));
        let addresses_at = bytes.len() - (4 + 4 + 4 + 5 + 4);
        bytes[addresses_at..addresses_at + 4].copy_from_slice(&[0xff; 4]);
        assert!(matches!(parse(&bytes), Err(CcacheError::Truncated { .. })));

        // A header length past the end of the file, and a header field past
        // the end of the header.
        assert_eq!(
            parse(&[5, 4, 0xff, 0xff, 0, 1]),
            Err(CcacheError::Truncated {
                offset: 4,
                wanted: 0xffff
            })
        );
        let mut bytes = V4_KINIT_KEYTAB.to_vec();
        bytes[7] = 9;
        assert!(matches!(
            parse(&bytes),
            Err(CcacheError::Malformed { offset: 4, .. })
        ));
    }

    #[test]
    fn too_many_credentials() {
        let alice = principal(&["a"], "R");
        let entry = config_entry(&alice, "k", b"v");
        let mut cache = CredentialCache::new(alice, vec![entry; MAX_CREDENTIALS]);
        assert_eq!(
            parse(&serialize(&cache)).map(|c| c.credentials.len()),
            Ok(MAX_CREDENTIALS)
        );
        cache.credentials.push(cache.credentials[0].clone());
        assert_eq!(
            parse(&serialize(&cache)),
            Err(CcacheError::TooLarge {
                what: "credentials",
                count: 10_001,
                limit: 10_000
            })
        );
    }

    #[test]
    fn unsupported_versions() {
        for version in [0x0501_u16, 0x0502, 0x0505, 0x0000, 0x0405] {
            let mut bytes = V4_KINIT_KEYTAB.to_vec();
            bytes[..2].copy_from_slice(&version.to_be_bytes());
            assert_eq!(parse(&bytes), Err(CcacheError::UnsupportedVersion(version)));
        }
        assert_eq!(
            parse(&[]),
            Err(CcacheError::Truncated {
                offset: 0,
                wanted: 2
            })
        );
        assert_eq!(
            CcacheError::UnsupportedVersion(0x0502).to_string(),
            "credential cache has format version 0x0502; only 0x0503 and 0x0504 are \
             supported (is this a FILE cache written by MIT krb5 or Heimdal?)"
        );
    }

    #[test]
    fn is_skey_must_be_a_boolean() {
        let cache = parse(V4_KINIT_KEYTAB).unwrap();
        let mut bytes = V4_KINIT_KEYTAB.to_vec();
        let tgt = cache.credentials.last().unwrap();
        assert!(tgt.addresses.is_empty() && tgt.authdata.is_empty());
        let tail = 4 + 4 + 4 + tgt.ticket.len() + 4 + tgt.second_ticket.len();
        let skey_at = bytes.len() - tail - 4 - 1;
        assert_eq!(bytes[skey_at], 0);
        bytes[skey_at] = 2;
        assert_eq!(
            parse(&bytes),
            Err(CcacheError::Malformed {
                offset: skey_at,
                reason: "the is_skey flag is neither 0 nor 1"
            })
        );
    }

    #[test]
    fn empty_cache_has_no_tgt() {
        // kinit creates the file with only the default principal before it
        // talks to the KDC; a cache caught in that state has no TGT yet.
        let cache = parse(V4_KINIT_KEYTAB).unwrap();
        let empty = &V4_KINIT_KEYTAB[..complete_prefixes(&cache)[0].0];
        assert_eq!(
            inspect_bytes(empty),
            Err(CcacheError::NoTicketGrantingTicket {
                principal: "alice@FIXTURE.TEST".into()
            })
        );
    }

    #[test]
    fn tgt_selection() {
        let alice = principal(&["alice"], "EXAMPLE.ORG");
        let krbtgt = principal(&["krbtgt", "EXAMPLE.ORG"], "EXAMPLE.ORG");
        let cross_realm = principal(&["krbtgt", "OTHER.ORG"], "EXAMPLE.ORG");
        let mut not_tgt = vec![
            config_entry(&alice, "pa_type", b"2"),
            ticket(&alice, cross_realm, 900),
            ticket(&principal(&["bob"], "EXAMPLE.ORG"), krbtgt.clone(), 900),
            ticket(
                &alice,
                principal(&["krbtgt", "EXAMPLE.ORG"], "X-CACHECONF:"),
                900,
            ),
        ];
        let cache = CredentialCache::new(alice.clone(), not_tgt.clone());
        assert_eq!(cache.ticket_granting_ticket(), None);

        not_tgt.push(ticket(&alice, krbtgt.clone(), 100));
        not_tgt.push(ticket(&alice, krbtgt.clone(), 300));
        not_tgt.push(ticket(&alice, krbtgt, 300));
        let cache = CredentialCache::new(alice, not_tgt);
        let tgt = cache.ticket_granting_ticket().unwrap();
        assert!(std::ptr::eq(tgt, &cache.credentials[5]));
        let info = cache.ticket_info().unwrap();
        // starttime 0 means "from authtime".
        assert_eq!((info.starts_at, info.expires_at), (1000, 300));
    }

    #[test]
    fn principal_names_are_escaped() {
        let odd = principal(&["a/b", "c@d\\e", "\0\t\n\u{8}"], "R@/S");
        assert_eq!(
            odd.to_string_lossy(),
            "a\\/b/c\\@d\\\\e/\\0\\t\\n\\b@R\\@/S"
        );
        let mut bad_utf8 = principal(&["x"], "R");
        bad_utf8.components[0] = vec![b'x', 0xff];
        assert_eq!(bad_utf8.to_string_lossy(), "x\u{fffd}@R");
    }

    #[test]
    fn long_names_are_shortened_in_errors() {
        let long = principal(&[&"x".repeat(1000)], "R");
        let Err(CcacheError::NoTicketGrantingTicket { principal }) =
            CredentialCache::new(long, Vec::new()).ticket_info()
        else {
            panic!("expected NoTicketGrantingTicket");
        };
        assert_eq!(principal, format!("{}…", "x".repeat(256)));
    }
}
