//! Templates for principal, keytab and cache names (`/tmp/krb5cc_{uid}`),
//! and the username check that runs before a name can reach a path.
//!
//! Placeholders are filled only from the password database entry of the
//! authenticated user and from the configured realm, never from the login
//! form, so a crafted username cannot steer root to another file.
//!
//! A username is a local account name (`alice`) or a domain account as
//! winbind or SSSD present it (`DOMAIN\alice`, `alice@ad.example`): one
//! separator at most, each part from a small safe alphabet, so no part can
//! hold `/`, `..`, a control character or shell syntax.

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 7] = ["username", "user", "domain", "uid", "gid", "home", "realm"];

/// Longest domain part of a username (a DNS name's limit).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Longest username accepted; longer input is refused before it reaches PAM
/// or a path (Linux's own limit is 32 bytes for most tools).
pub const MAX_USERNAME_LEN: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template {template:?}: unknown placeholder {{{name}}}; known placeholders are {{username}}, {{user}}, {{domain}}, {{uid}}, {{gid}}, {{home}}, {{realm}}")]
    UnknownPlaceholder { template: String, name: String },
    #[error("template {template:?}: unbalanced brace at byte {offset}; write {{{{ or }}}} for a literal brace")]
    UnbalancedBrace { template: String, offset: usize },
    #[error("template {template:?} expands to {value:?}, which is not an absolute path without '..' components")]
    NotAnAbsolutePath { template: String, value: String },
    #[error("invalid username {shown}: {reason}")]
    InvalidUsername { shown: String, reason: &'static str },
    #[error("invalid {field} {value:?} from the password database or configuration: {reason}")]
    InvalidValue {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Values for the placeholders, taken from the password database.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    /// The account's name in templates: a local name, or `user@domain`.
    pub username: &'a str,
    /// The user part of the name, without a domain.
    pub user: &'a str,
    /// The domain part of the name; empty for a local account.
    pub domain: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub home: &'a str,
    pub realm: &'a str,
}

enum Piece<'t> {
    Literal(&'t str),
    Placeholder(&'t str),
}

fn parse(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let bytes = template.as_bytes();
    let mut literal_start = 0;
    let mut i = 0;
    let unbalanced = |offset| TemplateError::UnbalancedBrace {
        template: template.to_owned(),
        offset,
    };
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                pieces.push(Piece::Literal(&template[literal_start..=i]));
                i += 2;
                literal_start = i;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                pieces.push(Piece::Literal(&template[literal_start..=i]));
                i += 2;
                literal_start = i;
            }
            b'{' => {
                let close = template[i + 1..]
                    .find(['{', '}'])
                    .map(|rel| i + 1 + rel)
                    .filter(|&end| bytes[end] == b'}')
                    .ok_or_else(|| unbalanced(i))?;
                pieces.push(Piece::Literal(&template[literal_start..i]));
                let name = &template[i + 1..close];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(TemplateError::UnknownPlaceholder {
                        template: template.to_owned(),
                        name: name.to_owned(),
                    });
                }
                pieces.push(Piece::Placeholder(name));
                i = close + 1;
                literal_start = i;
            }
            b'}' => return Err(unbalanced(i)),
            _ => i += 1,
        }
    }
    pieces.push(Piece::Literal(&template[literal_start..]));
    Ok(pieces)
}

/// Checks a template's syntax and placeholders, so a typo fails at hub
/// start-up rather than at the first login.
pub fn validate(template: &str) -> Result<(), TemplateError> {
    parse(template).map(drop)
}

/// Fills in a template.
pub fn expand(template: &str, identity: &Identity<'_>) -> Result<String, TemplateError> {
    check_username(identity.username)?;
    check_value("user", identity.user, |u| match split_username(u) {
        Ok(UsernameParts { domain: None, .. }) => Ok(()),
        _ => Err("not a user name without a domain"),
    })?;
    check_value("domain", identity.domain, |d| {
        (d.is_empty() || check_domain(d).is_ok())
            .then_some(())
            .ok_or("not a DNS or NetBIOS domain name")
    })?;
    check_value("home directory", identity.home, |h| {
        h.starts_with('/').then_some(()).ok_or("not absolute")
    })?;
    check_value("realm", identity.realm, |r| {
        (!r.is_empty() && !r.contains(['/', '@', '\\']))
            .then_some(())
            .ok_or("empty or contains '/', '@' or '\\'")
    })?;
    let mut out = String::with_capacity(template.len() + 32);
    for piece in parse(template)? {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Placeholder("username") => out.push_str(identity.username),
            Piece::Placeholder("user") => out.push_str(identity.user),
            Piece::Placeholder("domain") => out.push_str(identity.domain),
            Piece::Placeholder("uid") => out.push_str(&identity.uid.to_string()),
            Piece::Placeholder("gid") => out.push_str(&identity.gid.to_string()),
            Piece::Placeholder("home") => out.push_str(identity.home),
            Piece::Placeholder(_) => out.push_str(identity.realm),
        }
    }
    Ok(out)
}

/// Fills in a template that names a file, and checks the result is an
/// absolute path without `..` components (a cache or keytab path root will
/// open).
pub fn expand_path(template: &str, identity: &Identity<'_>) -> Result<String, TemplateError> {
    let value = expand(template, identity)?;
    let bad = !value.starts_with('/') || value.split('/').any(|c| c == "..");
    if bad {
        return Err(TemplateError::NotAnAbsolutePath {
            template: template.to_owned(),
            value,
        });
    }
    Ok(value)
}

fn check_value(
    field: &'static str,
    value: &str,
    rule: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<(), TemplateError> {
    let reason = if value.contains('\0') || value.chars().any(char::is_control) {
        Err("contains control characters")
    } else {
        rule(value)
    };
    reason.map_err(|reason| TemplateError::InvalidValue {
        field,
        value: value.chars().take(64).collect(),
        reason,
    })
}

/// The parts of a username: `user`, `DOMAIN\\user` or `user@domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsernameParts<'a> {
    pub user: &'a str,
    pub domain: Option<&'a str>,
}

/// Accepts a local name or a domain account's name and splits it.
///
/// The user part is from the portable POSIX user name set (letters, digits,
/// `.`, `_`, `-`, not starting with `-` or `.`, optional trailing `$` for
/// Samba machine accounts). A name may carry one domain, before one `\` or
/// after one `@` (never both, never twice): dot-separated labels of letters,
/// digits, `_` and `-` (a DNS or NetBIOS name). Anything else — path
/// separators, `..`, shell metacharacters, control characters, look-alike
/// Unicode — is refused before it reaches PAM, a template or a path.
pub fn split_username(name: &str) -> Result<UsernameParts<'_>, TemplateError> {
    let refuse = |reason| TemplateError::InvalidUsername {
        shown: shown_username(name),
        reason,
    };
    if name.is_empty() {
        return Err(refuse("empty"));
    }
    if name.len() > MAX_USERNAME_LEN {
        return Err(refuse("too long"));
    }
    let separators = name.bytes().filter(|b| matches!(b, b'\\' | b'@')).count();
    if separators > 1 {
        return Err(refuse("more than one '\\' or '@'"));
    }
    let parts = match (name.split_once('\\'), name.split_once('@')) {
        (Some((domain, user)), _) | (_, Some((user, domain))) => UsernameParts {
            user,
            domain: Some(domain),
        },
        (None, None) => UsernameParts {
            user: name,
            domain: None,
        },
    };
    check_user_part(parts.user).map_err(refuse)?;
    if let Some(domain) = parts.domain {
        check_domain(domain).map_err(refuse)?;
    }
    Ok(parts)
}

/// Accepts what [`split_username`] accepts.
pub fn check_username(name: &str) -> Result<(), TemplateError> {
    split_username(name).map(drop)
}

fn check_user_part(user: &str) -> Result<(), &'static str> {
    let body = user.strip_suffix('$').unwrap_or(user);
    let first = body.as_bytes().first().copied().unwrap_or(b'$');
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return Err("must start with a letter, digit or '_'");
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN_LEN {
        return Err("the domain part is empty or too long");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    };
    if !domain.split('.').all(label_ok) {
        return Err("the domain part must be a DNS or NetBIOS name (letters, digits, '_', '-', dots between labels)");
    }
    Ok(())
}

/// A username as it may appear in a log line or message: truncated and with
/// non-printable characters escaped, because it is attacker-controlled.
pub fn shown_username(name: &str) -> String {
    const KEEP: usize = 32;
    let count = name.chars().count();
    let head: String = name.chars().take(KEEP).collect();
    let escaped = head.escape_debug().to_string();
    if count > KEEP {
        format!("\"{escaped}\"...({count} chars)")
    } else {
        format!("\"{escaped}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity<'static> {
        Identity {
            username: "alice",
            user: "alice",
            domain: "",
            uid: 1001,
            gid: 1002,
            home: "/home/alice",
            realm: "XX.COM",
        }
    }

    #[test]
    fn expands_every_placeholder() {
        let out = expand(
            "{username}/pg-dmp-workbench2@{realm} {uid}:{gid} {home}",
            &alice(),
        )
        .unwrap();
        assert_eq!(out, "alice/pg-dmp-workbench2@XX.COM 1001:1002 /home/alice");
    }

    #[test]
    fn default_templates() {
        assert_eq!(
            expand_path("/tmp/krb5cc_{uid}", &alice()).unwrap(),
            "/tmp/krb5cc_1001"
        );
        assert_eq!(
            expand_path("{home}/{username}.wb1.keytab", &alice()).unwrap(),
            "/home/alice/alice.wb1.keytab"
        );
        assert_eq!(
            expand("{username}@{realm}", &alice()).unwrap(),
            "alice@XX.COM"
        );
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(expand("{{uid}}-{uid}}}", &alice()).unwrap(), "{uid}-1001}");
    }

    #[test]
    fn unknown_placeholder_is_named() {
        let err = validate("/tmp/krb5cc_{usr}").unwrap_err();
        assert!(matches!(err, TemplateError::UnknownPlaceholder { ref name, .. } if name == "usr"));
        assert!(err.to_string().contains("{usr}"));
        assert!(validate("{uid:05d}").is_err());
        assert!(validate("{}").is_err());
    }

    #[test]
    fn unbalanced_braces_are_refused() {
        for bad in ["/tmp/{uid", "/tmp/uid}", "{{uid}", "{ {uid}", "{uid{"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_templates_must_stay_absolute() {
        assert!(expand_path("krb5cc_{uid}", &alice()).is_err());
        assert!(expand_path("/tmp/../etc/{username}", &alice()).is_err());
        assert!(expand_path("/tmp/..{uid}", &alice()).is_ok());
    }

    #[test]
    fn usernames_that_could_escape_a_path_are_refused() {
        let long = "a".repeat(5000);
        for bad in [
            "",
            "..",
            ".",
            "../root",
            "a/b",
            "-rf",
            "a b",
            "a;rm",
            "a\0b",
            "a\nb",
            "$(id)",
            "`id`",
            "аlice", // Cyrillic а
            "alice\u{200b}",
            &long,
        ] {
            assert!(check_username(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["alice", "a.b-c_d", "_svc", "Alice1", "host$", "1user"] {
            check_username(good).unwrap();
        }
    }

    #[test]
    fn domain_accounts_split_at_one_separator() {
        assert_eq!(
            split_username("ADPAMKRB\\adalice").unwrap(),
            UsernameParts {
                user: "adalice",
                domain: Some("ADPAMKRB")
            }
        );
        assert_eq!(
            split_username("adalice@ad.example").unwrap(),
            UsernameParts {
                user: "adalice",
                domain: Some("ad.example")
            }
        );
        assert_eq!(split_username("alice").unwrap().domain, None);
        for bad in [
            "A\\B\\c",
            "a@b@c",
            "D\\a@b",
            "\\alice",
            "alice@",
            "@ad.example",
            "alice@ad..example",
            "alice@.ad",
            "alice@ad.",
            "alice@-ad",
            "alice@ad/x",
            "alice@a d",
            "D/x\\alice",
            "..\\alice",
            "DOM\\..",
            "DOM\\a/b",
            "alice@ad\n",
            "alice@аd.example", // Cyrillic а
        ] {
            assert!(check_username(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn user_and_domain_placeholders() {
        let id = Identity {
            username: "adalice@adpamkrb",
            user: "adalice",
            domain: "adpamkrb",
            ..alice()
        };
        assert_eq!(
            expand_path("/srv/{domain}/{user}.keytab", &id).unwrap(),
            "/srv/adpamkrb/adalice.keytab"
        );
        assert_eq!(expand("{username}", &id).unwrap(), "adalice@adpamkrb");
        for (user, domain) in [
            ("a/b", ""),
            ("a@b", ""),
            ("..", ""),
            ("a", "x/y"),
            ("a", ".."),
        ] {
            let id = Identity {
                user,
                domain,
                ..alice()
            };
            assert!(expand("{user}", &id).is_err(), "{user:?} {domain:?}");
        }
    }

    #[test]
    fn expand_refuses_bad_identity_values() {
        let mut id = alice();
        id.username = "../etc";
        assert!(expand("{username}", &id).is_err());
        let mut id = alice();
        id.realm = "A/B";
        assert!(expand("{realm}", &id).is_err());
        let mut id = alice();
        id.home = "relative";
        assert!(expand("{home}", &id).is_err());
    }

    #[test]
    fn shown_username_truncates_and_escapes() {
        let shown = shown_username(&format!("{}\n", "x".repeat(100)));
        assert!(shown.len() < 60, "{shown}");
        assert!(shown.ends_with("(101 chars)"));
        assert_eq!(shown_username("a\nb"), "\"a\\nb\"");
    }
}
