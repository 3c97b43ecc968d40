//! The contract between a driver and the shard loop, on top of smoltcp's `phy::Device`.

use std::os::fd::RawFd;

/// Frame counters a link keeps; read by `sixstack stats` and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames handed to the stack.
    pub rx_frames: u64,
    /// Bytes of the frames handed to the stack.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Bytes of the frames sent.
    pub tx_bytes: u64,
    /// Frames dropped on receive (ring overflow reported by the kernel, oversize, no buffer).
    pub rx_dropped: u64,
    /// Frames the stack wanted to send but no TX slot was free.
    pub tx_dropped: u64,
    /// Times the driver had to kick the kernel (sendto/poll wakeups).
    pub kicks: u64,
}

/// What every sixstack driver offers the shard loop besides `phy::Device`.
///
/// The shard calls `Device::receive`/`transmit` through smoltcp, then [`Link::flush`] once
/// per poll round, so a driver may queue TX frames and submit them as one batch. When the
/// shard has nothing to do it sleeps until [`Link::wait_fd`] is readable (or a timer fires).
pub trait Link: smoltcp::phy::Device {
    /// A short human description: driver, interface, queue and mode
    /// (e.g. `af_xdp six0 q0 native copy`).
    fn describe(&self) -> String;

    /// Submits the frames queued since the last flush and refills receive buffers.
    /// Called by the shard once per poll round; must be cheap when nothing is queued.
    fn flush(&mut self) -> std::io::Result<()>;

    /// A file descriptor that polls readable when received frames may be waiting.
    /// `None` means the link cannot be slept on and the shard must poll it periodically.
    fn wait_fd(&self) -> Option<RawFd>;

    /// Called right before the shard sleeps on [`Link::wait_fd`]. Returns `false` when frames
    /// are already waiting (the shard must not sleep).
    fn prepare_wait(&mut self) -> bool {
        true
    }

    /// Counters since the link was opened.
    fn stats(&self) -> LinkStats;
}
