//! Templates come from the hub's configuration; the identity values come from
//! the password database, and the username may be whatever a login form sent.
//! None of it may make template code panic, and a path template must never
//! expand to a relative path or one with a `..` component, whatever the input.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pamkrb::template::{self, Identity, MAX_USERNAME_LEN};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    template: &'a str,
    username: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
    realm: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let parts = template::split_username(input.username).ok();
    let identity = Identity {
        username: input.username,
        user: parts.map_or(input.username, |p| p.user),
        domain: parts.and_then(|p| p.domain).unwrap_or(""),
        uid: input.uid,
        gid: input.gid,
        home: input.home,
        realm: input.realm,
    };
    let valid = template::validate(input.template).is_ok();
    let expanded = template::expand(input.template, &identity);
    // expand may also refuse the identity, but never accept a bad template.
    assert!(
        valid || expanded.is_err(),
        "expand accepted a template validate refused"
    );

    if let Ok(path) = template::expand_path(input.template, &identity) {
        assert!(
            path.starts_with('/'),
            "expand_path gave a relative path {path:?}"
        );
        assert!(
            !path.split('/').any(|c| c == ".."),
            "expand_path gave a path with a '..' component: {path:?}"
        );
        assert_eq!(
            Ok(&path),
            expanded.as_ref(),
            "expand_path and expand disagree"
        );
    }

    let username_ok = template::check_username(input.username).is_ok();
    if let Some(parts) = parts.filter(|_| username_ok) {
        assert!(
            input.username.len() <= MAX_USERNAME_LEN,
            "accepted a username of {} bytes",
            input.username.len()
        );
        let body = parts.user.strip_suffix('$').unwrap_or(parts.user);
        assert!(
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
            "accepted username {:?}",
            input.username
        );
        // Neither "." nor ".." nor an option-like "-x" may pass.
        assert!(
            !body.starts_with(['.', '-']) && !body.is_empty(),
            "accepted username {:?}",
            input.username
        );
        // One domain at most, of DNS/NetBIOS labels: never '/', '..' or a
        // control character.
        if let Some(domain) = parts.domain {
            assert!(
                domain.split('.').all(|label| !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))),
                "accepted domain {domain:?}"
            );
        }
        let separators = input.username.matches(['\\', '@']).count();
        assert!(separators <= 1, "accepted username {:?}", input.username);
    }
    // A username the check refuses can never be expanded into anything.
    if !username_ok {
        assert!(
            expanded.is_err(),
            "expand used refused username {:?}",
            input.username
        );
    }
    let _ = template::shown_username(input.username);
});
