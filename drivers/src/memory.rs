//! Process memory: large blocks go back to the kernel when they are freed.
//!
//! glibc's malloc raises its mmap threshold each time a large mapped block is freed (up to
//! 32 MiB), and from then on blocks of that size come from a thread's arena and stay
//! resident after they are freed. In sixstack one FTP password check (an Argon2id work
//! area of 19 MiB on an offload thread) each login-cache lifetime was enough to leave
//! 19 MiB behind for good: the soak's one step of resident memory at 300 s. Setting the
//! threshold once turns the adjustment off: every block of [`LARGE_BLOCK`] or more is
//! mapped on its own and unmapped when freed, so resident memory follows what is live.
//! Socket buffers are kept in each shard's pool and are not affected.
#![allow(unsafe_code)]

/// Blocks at least this large are mapped on their own and returned when freed.
pub const LARGE_BLOCK: usize = 1 << 20;

/// Fixes the allocator's mmap threshold at [`LARGE_BLOCK`]; call once at start, before
/// threads are started. Returns false where the C library has no such setting (not glibc)
/// or refused it; memory then behaves as the library decides.
pub fn return_large_blocks() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two integers and no pointers; glibc documents it as safe
        // to call at any time, and its return value (1 on success) is checked.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK as libc::c_int) };
        ok == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_accepted() {
        assert!(return_large_blocks());
    }
}
