//! The credential cache parser reads files that users own, as root: it must
//! refuse anything malformed without panicking, and whatever it accepts it
//! must write back byte for byte (the cache refresh path rewrites caches it
//! has parsed, so a lossy round trip would corrupt a user's tickets).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pamkrb::ccache;

fuzz_target!(|data: &[u8]| {
    if let Ok(cache) = ccache::parse(data) {
        let written = ccache::serialize(&cache);
        assert!(
            written == data,
            "serialize(parse(x)) != x: {} bytes in, {} bytes out, first difference at byte {:?}",
            data.len(),
            written.len(),
            written.iter().zip(data).position(|(a, b)| a != b),
        );
        // Whatever parses can be summarised without panicking (an error such
        // as "no ticket-granting ticket" is fine).
        let _ = cache.ticket_info();
    }
    // The entry point the bindings call, on every input, valid or not.
    let _ = ccache::inspect_bytes(data);
});
