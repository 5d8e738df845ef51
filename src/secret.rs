//! Password bytes that are wiped when dropped.

/// Overwrites `buf` with zeros in a way the optimiser may not elide.
pub fn wipe(buf: &mut [u8]) {
    for byte in buf.iter_mut() {
        // SAFETY: `byte` is a valid, exclusive reference into `buf`.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// An owned secret (a password). Its `Debug` never shows the content and its
/// memory is zeroed on drop.
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// For tests: a global allocator that counts heap blocks freed while they
/// still hold [`leak_check::MARKER`]. A secret built from the marker that
/// was copied into an unwiped buffer (or into one that was reallocated,
/// leaving the old block behind) shows up here when that buffer is freed.
#[cfg(test)]
pub(crate) mod leak_check {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A password no test puts anywhere but into a `SecretBytes`; only one
    /// test may use it, so that its count is its own.
    pub const MARKER: &[u8] = b"pamkrb-leak-check-7f3a9c-marker";

    static FREED_WITH_MARKER: AtomicUsize = AtomicUsize::new(0);

    pub fn freed_with_marker() -> usize {
        FREED_WITH_MARKER.load(Ordering::SeqCst)
    }

    struct Watching;

    // SAFETY: every allocation is delegated to `System` unchanged; `dealloc`
    // only reads the block (through libc, which may read uninitialised
    // bytes) before handing it back.
    unsafe impl GlobalAlloc for Watching {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded from the caller.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // Passwords are at most 8 KiB; larger blocks are not scanned.
            if (MARKER.len()..=64 * 1024).contains(&layout.size()) {
                // SAFETY: `ptr` is a live block of `layout.size()` bytes.
                let found = unsafe {
                    libc::memmem(
                        ptr.cast(),
                        layout.size(),
                        MARKER.as_ptr().cast(),
                        MARKER.len(),
                    )
                };
                if !found.is_null() {
                    FREED_WITH_MARKER.fetch_add(1, Ordering::SeqCst);
                }
            }
            // SAFETY: forwarded from the caller.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static WATCHING: Watching = Watching;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = SecretBytes::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "SecretBytes(<7 bytes redacted>)");
    }

    #[test]
    fn wipe_zeroes() {
        let mut buf = *b"hunter2";
        wipe(&mut buf);
        assert_eq!(buf, [0; 7]);
    }
}
