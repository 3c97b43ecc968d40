//! The TAP driver: frames to and from a kernel TAP interface, batched through io_uring —
//! the fallback link when XDP is not available, and the easy way to put sixstack on a
//! host's own network.
//!
//! A batch of reads stays in flight on the TAP descriptor, each into its own preallocated
//! buffer; completed reads are the frames `receive` hands out, and their buffers are read
//! into again at the next [`Link::flush`]. Frames smoltcp transmits are queued in
//! preallocated buffers and written by one `io_uring_enter` per flush. The shard sleeps on an
//! eventfd the ring signals on every completion. Where io_uring cannot be set up (disabled
//! by `kernel.io_uring_disabled`, seccomp, an old kernel) the link falls back to plain
//! non-blocking `read`/`write` on the same buffers and says so in [`Link::describe`].
//!
//! Not here: bringing the interface up, addressing it or setting its MTU (the caller or the
//! lab does that with `ip link`), and the MAC address (the stack picks its own; the kernel
//! side of the TAP has another).

mod engine;
mod sys;

use std::os::fd::RawFd;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::link::{Link, LinkStats};
use engine::{Engine, TxSlot};

use crate::ETH_HEADER;
/// The smallest IP MTU accepted (IPv4's minimum).
pub const MIN_MTU: usize = 68;
/// The largest IP MTU accepted (a 64 KiB frame).
pub const MAX_MTU: usize = 65_535 - ETH_HEADER;

/// Why a TAP link could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TapError {
    /// The interface name is empty, longer than 15 bytes, or contains a NUL or `/`.
    #[error("invalid TAP interface name {name:?}: 1 to 15 bytes, no NUL or '/'")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The MTU is outside [`MIN_MTU`]`..=`[`MAX_MTU`].
    #[error("invalid MTU {mtu}: must be {MIN_MTU} to {MAX_MTU}")]
    InvalidMtu {
        /// The MTU given.
        mtu: usize,
    },
    /// `/dev/net/tun` could not be opened (the tun module is missing, or no permission).
    #[error("cannot open /dev/net/tun: {0}")]
    OpenTun(#[source] std::io::Error),
    /// The kernel refused to attach to or create the TAP interface (`TUNSETIFF`): no
    /// `CAP_NET_ADMIN`, or the name belongs to an interface of another kind or owner.
    #[error("cannot attach TAP interface {name}: {source}")]
    Attach {
        /// The interface name.
        name: String,
        /// The error from `TUNSETIFF`.
        #[source]
        source: std::io::Error,
    },
    /// Without io_uring, the descriptor could not be made non-blocking.
    #[error("cannot make the TAP descriptor non-blocking: {0}")]
    NonBlocking(#[source] std::io::Error),
}

/// How a TAP link is set up; [`TapOptions::default`] is what [`TapLink::open`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TapOptions {
    /// Receive buffers (reads kept in flight) and, as many, transmit buffers. Default 32.
    pub batch: usize,
    /// Use io_uring when the kernel allows it (default); `false` forces read/write.
    pub io_uring: bool,
}

impl Default for TapOptions {
    fn default() -> TapOptions {
        TapOptions {
            batch: 32,
            io_uring: true,
        }
    }
}

/// A TAP interface as a smoltcp `Device` and a [`Link`].
///
/// Reads are armed by the first [`Link::flush`] or [`Link::prepare_wait`], so open the link
/// on any thread (for instance one inside the right network namespace) and run it on the
/// shard's thread: io_uring completes operations in the context of the thread that
/// submitted them.
pub struct TapLink {
    name: String,
    mtu: usize,
    engine: Engine,
    /// Why io_uring is not used, when it is not.
    fallback: Option<String>,
}

impl std::fmt::Debug for TapLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapLink")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("io_uring", &self.engine.uses_uring())
            .finish_non_exhaustive()
    }
}

impl TapLink {
    /// Opens (creating it if needed, in the calling thread's network namespace) the TAP
    /// interface `name` for Ethernet frames of up to `mtu + 14` bytes, with the default
    /// [`TapOptions`].
    ///
    /// # Errors
    /// See [`TapError`]; io_uring being unavailable is not an error (the link falls back).
    pub fn open(name: &str, mtu: usize) -> Result<TapLink, TapError> {
        TapLink::open_with(name, mtu, TapOptions::default())
    }

    /// Like [`TapLink::open`], with explicit options.
    ///
    /// # Errors
    /// See [`TapError`].
    pub fn open_with(name: &str, mtu: usize, options: TapOptions) -> Result<TapLink, TapError> {
        if name.is_empty()
            || name.len() >= sys::IFNAMSIZ
            || name.bytes().any(|b| b == 0 || b == b'/')
        {
            return Err(TapError::InvalidName {
                name: name.to_owned(),
            });
        }
        if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            return Err(TapError::InvalidMtu { mtu });
        }
        let file = sys::open_tun().map_err(TapError::OpenTun)?;
        sys::set_tap(&file, name).map_err(|source| TapError::Attach {
            name: name.to_owned(),
            source,
        })?;
        let (engine, fallback) =
            Engine::new(file, mtu + ETH_HEADER, options.batch, options.io_uring)
                .map_err(TapError::NonBlocking)?;
        if let Some(why) = &fallback {
            log::info!("tap {name}: io_uring not used ({why}); using read/write");
        }
        Ok(TapLink {
            name: name.to_owned(),
            mtu,
            engine,
            fallback,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether frames move through io_uring (`false`: the read/write fallback).
    pub fn uses_io_uring(&self) -> bool {
        self.engine.uses_uring()
    }
}

impl phy::Device for TapLink {
    type RxToken<'a> = TapRxToken<'a>;
    type TxToken<'a> = TapTxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(TapRxToken<'_>, TapTxToken<'_>)> {
        let (frame, slot) = self.engine.receive()?;
        Some((TapRxToken { frame }, TapTxToken { slot }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TapTxToken<'_>> {
        self.engine.transmit().map(|slot| TapTxToken { slot })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + ETH_HEADER;
        caps
    }
}

impl Link for TapLink {
    fn describe(&self) -> String {
        match &self.fallback {
            None => format!("tap {} io_uring", self.name),
            Some(why) => format!("tap {} read/write (no io_uring: {why})", self.name),
        }
    }

    /// Re-arms the reads whose frames were handed out and writes the queued frames: one
    /// `io_uring_enter` in all (one `write` per frame in the fallback). Returns the last
    /// unexpected read or write error since the previous flush, once.
    fn flush(&mut self) -> std::io::Result<()> {
        self.engine.flush()
    }

    /// The eventfd registered with the ring (signalled on every completion), or the TAP
    /// descriptor in the read/write fallback.
    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.engine.wait_fd())
    }

    fn prepare_wait(&mut self) -> bool {
        self.engine.prepare_wait()
    }

    fn stats(&self) -> LinkStats {
        self.engine.stats()
    }
}

/// A frame received on the TAP link, borrowed from its read buffer.
#[derive(Debug)]
pub struct TapRxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for TapRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// The right to send one frame on the TAP link; the frame is written at the next flush.
pub struct TapTxToken<'a> {
    slot: TxSlot<'a>,
}

impl std::fmt::Debug for TapTxToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapTxToken").finish_non_exhaustive()
    }
}

impl phy::TxToken for TapTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        self.slot.fill(len, f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_mtus_are_refused_before_any_syscall() {
        for name in ["", "0123456789abcdef", "a/b", "a\0b"] {
            assert!(matches!(
                TapLink::open(name, 1500),
                Err(TapError::InvalidName { .. })
            ));
        }
        assert!(matches!(
            TapLink::open("sx0", 10),
            Err(TapError::InvalidMtu { mtu: 10 })
        ));
        assert!(matches!(
            TapLink::open("sx0", 70_000),
            Err(TapError::InvalidMtu { .. })
        ));
    }

    #[test]
    fn link_is_send() {
        fn is_send<T: Send>() {}
        is_send::<TapLink>();
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let e = TapLink::open("0123456789abcdef", 1500).unwrap_err();
        assert!(e.to_string().contains("0123456789abcdef"), "{e}");
    }
}
