//! [`XdpLink`]: one XSK socket bound to one queue, with its own UMEM and four rings, as a
//! smoltcp `phy::Device` and a [`Link`].
//!
//! Receive: the kernel fills frames from the fill ring and posts them on the RX ring; an
//! RX token lends the stack a view straight into the UMEM, then the frame waits in a local
//! list until [`Link::flush`] puts the batch back on the fill ring. Transmit: a TX token
//! hands the stack a free frame to write; the descriptor is queued on the TX ring and
//! published, with at most one kick per batch (more only while copy mode's per-call budget
//! leaves frames behind), by [`Link::flush`], which also reaps the completion ring.
//!
//! Jumbo frames (an MTU beyond one UMEM frame) use multi-buffer AF_XDP (`XDP_USE_SG`): a
//! received frame that arrives in several buffers is gathered into one scratch buffer (the
//! only copy, and only for frames that need it); a transmitted frame is written straight
//! into a slot of consecutive UMEM frames and posted as one descriptor per frame, all but
//! the last marked `XDP_PKT_CONTD`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};

use super::ring::{ConsRing, ProdRing};
use super::sys::{self, MmapOffsets, SockaddrXdp, UmemReg, XdpDesc, XdpStatistics};
use super::umem::{RxArea, TxArea, Umem};
use super::{AttachedMode, XdpConfig, XdpError, XdpProgram, ZeroCopy};
use crate::{Link, LinkStats};

/// How long `bind` keeps retrying EBUSY (a queue stays busy for a few seconds after the
/// previous socket on it closed).
const BIND_RETRY_WINDOW: Duration = Duration::from_secs(5);
/// Frames smoltcp may handle per poll round.
const BURST: usize = 64;
/// Frames the kernel sends per `sendto` in copy mode (its `TX_BATCH_SIZE`); used to bound
/// the kick loop.
const COPY_TX_BUDGET: u32 = 32;

/// The receive half of a link: RX ring, fill ring, and the frames waiting to go back.
#[derive(Debug)]
struct RxSide {
    ring: ConsRing<XdpDesc>,
    fill: ProdRing<u64>,
    area: RxArea,
    /// Consumed frames not yet back on the fill ring (capacity: every receive frame).
    refill: Vec<u64>,
    /// A multi-buffer frame being gathered, or gathered and waiting for the stack.
    gather: Vec<u8>,
    /// Whether `gather` holds a whole frame.
    gathered: bool,
    /// Whether the rest of the current multi-buffer frame is being skipped (too long).
    skipping: bool,
    /// The largest frame accepted.
    max_frame: usize,
    frames: u64,
    bytes: u64,
    dropped: u64,
}

/// The transmit half: TX ring, completion ring and the free frames.
#[derive(Debug)]
struct TxSide {
    ring: ProdRing<XdpDesc>,
    comp: ConsRing<u64>,
    area: TxArea,
    /// Slots the stack may write (capacity: every transmit slot).
    free: Vec<u64>,
    /// TX descriptors one frame may need (1 unless multi-buffer).
    span: u32,
    frames: u64,
    bytes: u64,
    dropped: u64,
}

impl TxSide {
    /// Moves completed frames back to the free list.
    fn reap(&mut self) {
        while let Some(addr) = self.comp.peek() {
            self.comp.advance();
            // Never trust an address blindly: only whole transmit frames, never twice more
            // than the list can hold.
            if self.area.owns(addr) && self.free.len() < self.free.capacity() {
                self.free.push(addr);
            } else if self.area.is_continuation(addr) {
                // A later buffer of a multi-buffer frame: its slot came back with the first.
            } else {
                log::warn!("af_xdp: ignoring bogus completion address {addr:#x}");
            }
        }
        self.comp.release();
    }

    /// Whether a frame can be sent now (a free frame and a TX ring slot), reaping
    /// completions when the free list is empty.
    fn ready(&mut self) -> bool {
        if self.free.is_empty() {
            self.reap();
        }
        !self.free.is_empty() && self.ring.free(self.span) >= self.span
    }
}

impl RxSide {
    /// Takes the next whole frame off the RX ring: `Some(Some(desc))` for a single-buffer
    /// frame (still on the ring, read in place), `Some(None)` when a multi-buffer frame
    /// now waits in `gather`, `None` when no whole frame is there yet. Bad descriptors and
    /// over-long frames are dropped and counted.
    fn next_frame(&mut self) -> Option<Option<XdpDesc>> {
        if self.gathered {
            return Some(None);
        }
        loop {
            let desc = self.ring.peek()?;
            let more = desc.options & sys::XDP_PKT_CONTD != 0;
            let chained = more || !self.gather.is_empty() || self.skipping;
            let bytes = self.area.frame(desc.addr, desc.len);
            if !chained {
                if bytes.is_some() {
                    return Some(Some(desc));
                }
                // A descriptor outside the receive half: skip it, keep the frame if ours.
                self.consume_desc(desc.addr);
                self.dropped += 1;
                continue;
            }
            // One buffer of a multi-buffer frame: copy it out and give it back at once.
            match bytes {
                Some(b) if !self.skipping && self.gather.len() + b.len() <= self.max_frame => {
                    self.gather.extend_from_slice(b);
                }
                _ => {
                    if !self.skipping {
                        self.dropped += 1;
                    }
                    self.skipping = true;
                    self.gather.clear();
                }
            }
            self.consume_desc(desc.addr);
            if !more {
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                self.gathered = true;
                return Some(None);
            }
        }
    }

    /// Consumes the descriptor at the head of the RX ring and queues its frame for the
    /// fill ring (if the address is one of ours).
    fn consume_desc(&mut self, addr: u64) {
        self.ring.advance();
        self.ring.release();
        if self.area.owns(addr) {
            self.refill.push(self.area.frame_base(addr));
        }
    }
}

/// One AF_XDP socket bound to one queue, with its own UMEM; a smoltcp `Device` and a
/// [`Link`]. Owned by one shard thread (it is `Send`, not `Sync`).
#[derive(Debug)]
pub struct XdpLink {
    // Declared first so it closes first: the socket goes before the memory it used.
    fd: OwnedFd,
    rx: RxSide,
    tx: TxSide,
    ifname: String,
    queue: u32,
    zero_copy: bool,
    /// The largest Ethernet frame sent or received.
    frame_len: usize,
    kicks: u64,
    // Declared last: the program detaches (if this was its last owner) after the socket is
    // gone.
    program: XdpProgram,
}

/// Why one attempt to create and bind the socket failed.
enum OpenError {
    /// `bind` failed with this error (the caller decides about retries and fallbacks).
    Bind(io::Error),
    /// Anything before `bind`.
    Setup(XdpError),
}

fn syscall(name: &'static str) -> impl FnOnce(io::Error) -> OpenError {
    move |source| {
        OpenError::Setup(XdpError::Syscall {
            syscall: name,
            source,
        })
    }
}

/// The parts of a bound socket.
struct Bound {
    fd: OwnedFd,
    rx: RxSide,
    tx: TxSide,
    zero_copy: bool,
}

/// Creates the socket, its UMEM and rings, stocks the fill ring and binds, once.
fn open_once(cfg: &XdpConfig, ifindex: u32, zero_copy: bool) -> Result<Bound, OpenError> {
    let fd = sys::socket(libc::AF_XDP, libc::SOCK_RAW, 0).map_err(syscall("socket(AF_XDP)"))?;
    let rx_frames = cfg.frame_count / 2;
    let tx_frames = cfg.frame_count - rx_frames;
    let span = cfg.tx_span();
    let umem = Umem::new(cfg.frame_size, cfg.frame_count, rx_frames, span)
        .map_err(syscall("mmap(UMEM)"))?;
    let reg = UmemReg {
        addr: umem.region.addr,
        len: umem.region.len,
        chunk_size: cfg.frame_size,
        ..UmemReg::default()
    };
    sys::setsockopt(&fd, sys::SOL_XDP, sys::XDP_UMEM_REG, &reg)
        .map_err(syscall("setsockopt(XDP_UMEM_REG)"))?;
    // Fill and completion rings hold every frame of their half, so returning frames never
    // waits for space.
    let fill_size = rx_frames.next_power_of_two().max(cfg.ring_size);
    let comp_size = tx_frames.next_power_of_two().max(cfg.ring_size);
    let sizes = [
        (
            sys::XDP_UMEM_FILL_RING,
            fill_size,
            "setsockopt(XDP_UMEM_FILL_RING)",
        ),
        (
            sys::XDP_UMEM_COMPLETION_RING,
            comp_size,
            "setsockopt(XDP_UMEM_COMPLETION_RING)",
        ),
        (sys::XDP_RX_RING, cfg.ring_size, "setsockopt(XDP_RX_RING)"),
        (sys::XDP_TX_RING, cfg.ring_size, "setsockopt(XDP_TX_RING)"),
    ];
    for (opt, size, name) in sizes {
        sys::setsockopt(&fd, sys::SOL_XDP, opt, &size).map_err(syscall(name))?;
    }
    let (off, len) = sys::getsockopt::<MmapOffsets>(&fd, sys::SOL_XDP, sys::XDP_MMAP_OFFSETS)
        .map_err(syscall("getsockopt(XDP_MMAP_OFFSETS)"))?;
    if len != std::mem::size_of::<MmapOffsets>() {
        return Err(syscall("getsockopt(XDP_MMAP_OFFSETS)")(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel's rings have no flags word (kernel older than 5.4)",
        )));
    }
    let mut fill = ProdRing::map(&fd, &off.fr, fill_size, sys::XDP_UMEM_PGOFF_FILL_RING)
        .map_err(syscall("mmap(fill ring)"))?;
    let comp = ConsRing::map(&fd, &off.cr, comp_size, sys::XDP_UMEM_PGOFF_COMPLETION_RING)
        .map_err(syscall("mmap(completion ring)"))?;
    let rx_ring = ConsRing::map(&fd, &off.rx, cfg.ring_size, sys::XDP_PGOFF_RX_RING)
        .map_err(syscall("mmap(RX ring)"))?;
    let tx_ring = ProdRing::map(&fd, &off.tx, cfg.ring_size, sys::XDP_PGOFF_TX_RING)
        .map_err(syscall("mmap(TX ring)"))?;

    for addr in umem.rx.frame_addrs() {
        // Cannot fail: the fill ring holds every receive frame.
        fill.push(addr);
    }
    fill.submit();
    let mut free = Vec::with_capacity((tx_frames / span) as usize);
    free.extend(umem.tx.frame_addrs());

    let mode = if zero_copy {
        sys::XDP_ZEROCOPY
    } else {
        sys::XDP_COPY
    };
    let sg = if cfg.multi_buffer() {
        sys::XDP_USE_SG
    } else {
        0
    };
    let addr = SockaddrXdp {
        family: libc::AF_XDP as u16,
        flags: sys::XDP_USE_NEED_WAKEUP | mode | sg,
        ifindex,
        queue_id: cfg.queue,
        shared_umem_fd: 0,
    };
    sys::bind_xdp(&fd, &addr).map_err(OpenError::Bind)?;
    let zero_copy = sys::getsockopt::<u32>(&fd, sys::SOL_XDP, sys::XDP_OPTIONS)
        .map(|(flags, _)| flags & sys::XDP_OPTIONS_ZEROCOPY != 0)
        .unwrap_or(zero_copy);
    Ok(Bound {
        fd,
        rx: RxSide {
            ring: rx_ring,
            fill,
            area: umem.rx,
            refill: Vec::with_capacity(rx_frames as usize),
            gather: Vec::with_capacity(if cfg.multi_buffer() {
                cfg.frame_len() as usize
            } else {
                0
            }),
            gathered: false,
            skipping: false,
            max_frame: cfg.frame_len() as usize,
            frames: 0,
            bytes: 0,
            dropped: 0,
        },
        tx: TxSide {
            ring: tx_ring,
            comp,
            area: umem.tx,
            free,
            span,
            frames: 0,
            bytes: 0,
            dropped: 0,
        },
        zero_copy,
    })
}

fn is_errno(e: &io::Error, codes: &[i32]) -> bool {
    e.raw_os_error().is_some_and(|c| codes.contains(&c))
}

impl XdpLink {
    /// Asks the kernel to prefer busy polling for this socket (`SO_PREFER_BUSY_POLL`,
    /// `SO_BUSY_POLL` microseconds, `SO_BUSY_POLL_BUDGET` frames per poll), so a shard that
    /// busy-polls its rings also drives the driver's NAPI instead of waiting for an
    /// interrupt. Kernels or drivers without it answer with an error; the link works the
    /// same without.
    pub fn set_busy_poll(&self, usecs: u32, budget: u32) -> io::Result<()> {
        const SO_BUSY_POLL: libc::c_int = 46;
        const SO_PREFER_BUSY_POLL: libc::c_int = 69;
        const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
        let one: libc::c_int = 1;
        let usecs = libc::c_int::try_from(usecs).unwrap_or(libc::c_int::MAX);
        let budget = libc::c_int::try_from(budget).unwrap_or(libc::c_int::MAX);
        sys::setsockopt(&self.fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &one)?;
        sys::setsockopt(&self.fd, libc::SOL_SOCKET, SO_BUSY_POLL, &usecs)?;
        sys::setsockopt(&self.fd, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget)
    }

    /// Binds a socket to `cfg.queue` of the interface `program` is attached to and
    /// registers it in the program's XSKMAP, so the queue's matching frames reach it.
    ///
    /// Zero-copy is tried first under [`ZeroCopy::Auto`] (copy mode when the driver refuses
    /// with EOPNOTSUPP or EINVAL). EBUSY, which a queue answers for a few seconds after the
    /// previous socket on it closed, is retried with backoff for up to 5 s.
    pub fn bind(program: &XdpProgram, cfg: &XdpConfig) -> Result<XdpLink, XdpError> {
        cfg.validate()?;
        let ifindex =
            crate::netdev::ifindex(&cfg.ifname).map_err(|source| XdpError::Interface {
                ifname: cfg.ifname.clone(),
                source,
            })?;
        if ifindex != program.ifindex() {
            return Err(XdpError::WrongInterface {
                program: program.ifname().to_owned(),
                link: cfg.ifname.clone(),
            });
        }
        if cfg.queue >= program.queues() {
            return Err(XdpError::QueueOutOfRange {
                queue: cfg.queue,
                queues: program.queues(),
            });
        }
        let mut zero_copy = cfg.zero_copy != ZeroCopy::Off;
        let deadline = Instant::now() + BIND_RETRY_WINDOW;
        let mut backoff = Duration::from_millis(20);
        let bound = loop {
            match open_once(cfg, ifindex, zero_copy) {
                Ok(b) => break b,
                Err(OpenError::Setup(e)) => return Err(e),
                Err(OpenError::Bind(e))
                    if is_errno(&e, &[libc::EBUSY]) && Instant::now() < deadline =>
                {
                    log::debug!("{} q{}: bind EBUSY, retrying", cfg.ifname, cfg.queue);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(OpenError::Bind(e))
                    if zero_copy && is_errno(&e, &[libc::EOPNOTSUPP, libc::EINVAL]) =>
                {
                    if cfg.zero_copy == ZeroCopy::Require {
                        return Err(XdpError::ZeroCopyUnavailable {
                            ifname: cfg.ifname.clone(),
                            queue: cfg.queue,
                            source: e,
                        });
                    }
                    log::debug!(
                        "{} q{}: zero-copy refused ({e}); copy mode",
                        cfg.ifname,
                        cfg.queue
                    );
                    zero_copy = false;
                }
                Err(OpenError::Bind(e)) if cfg.multi_buffer() && is_errno(&e, &[libc::EINVAL]) => {
                    return Err(XdpError::Config(format!(
                        "MTU {} needs multi-buffer AF_XDP (XDP_USE_SG, kernel 6.6+), which \
                         {} refused: {e}",
                        cfg.mtu, cfg.ifname
                    )))
                }
                Err(OpenError::Bind(source)) => {
                    return Err(XdpError::Bind {
                        ifname: cfg.ifname.clone(),
                        queue: cfg.queue,
                        source,
                    })
                }
            }
        };
        super::bpf::xskmap_set(program.map(), cfg.queue, &bound.fd)?;
        Ok(XdpLink {
            fd: bound.fd,
            rx: bound.rx,
            tx: bound.tx,
            ifname: cfg.ifname.clone(),
            queue: cfg.queue,
            zero_copy: bound.zero_copy,
            frame_len: cfg.frame_len() as usize,
            kicks: 0,
            program: program.clone(),
        })
    }

    /// Attaches a program covering queues `0..=cfg.queue` (mode `cfg.attach`, filter
    /// `cfg.filter`) and binds to `cfg.queue`; the link owns the program, which detaches
    /// when the link is dropped. For several queues, attach one [`XdpProgram`] and
    /// [`XdpLink::bind`] each queue to it instead.
    pub fn open(cfg: &XdpConfig) -> Result<XdpLink, XdpError> {
        cfg.validate()?;
        let program = XdpProgram::attach(&cfg.ifname, &cfg.filter, cfg.attach, cfg.queue + 1)?;
        XdpLink::bind(&program, cfg)
    }

    /// Whether the socket is bound in zero-copy mode (as the kernel reports it).
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The mode of the XDP program feeding this socket.
    pub fn attached_mode(&self) -> AttachedMode {
        self.program.mode()
    }

    /// The program feeding this socket.
    pub fn program(&self) -> &XdpProgram {
        &self.program
    }

    /// The queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Publishes queued TX descriptors and kicks the kernel when it asks for it.
    fn submit_tx(&mut self) -> io::Result<()> {
        self.tx.ring.submit();
        let mut pending = self.tx.ring.in_kernel();
        // Copy mode sends at most COPY_TX_BUDGET frames per call and answers EAGAIN when
        // it left some behind; bound the loop by what the ring can hold.
        let mut budget = self.tx.ring.size() / COPY_TX_BUDGET + 2;
        while pending > 0 && self.tx.ring.needs_wakeup() && budget > 0 {
            budget -= 1;
            self.kicks += 1;
            match sys::kick_tx(&self.fd) {
                Ok(()) => {}
                Err(e) if is_errno(&e, &[libc::EAGAIN, libc::EINTR]) => {}
                // The device or another sender is busy: try again on the next flush.
                Err(e) if is_errno(&e, &[libc::EBUSY, libc::ENOBUFS]) => break,
                Err(e) => return Err(e),
            }
            if self.zero_copy {
                // The driver sends asynchronously; one kick is all it needs.
                break;
            }
            pending = self.tx.ring.in_kernel();
        }
        Ok(())
    }

    /// Puts consumed receive frames back on the fill ring.
    fn refill(&mut self) {
        let rx = &mut self.rx;
        if rx.refill.is_empty() {
            return;
        }
        while let Some(&addr) = rx.refill.last() {
            if !rx.fill.push(addr) {
                break;
            }
            rx.refill.pop();
        }
        rx.fill.submit();
        if rx.fill.needs_wakeup() {
            self.kicks += 1;
            // Only a nudge for the driver; nothing to report if it has nothing to do.
            let _ = sys::kick_rx(&self.fd);
        }
    }

    /// The kernel's own counters for this socket, if it answers.
    fn kernel_stats(&self) -> Option<XdpStatistics> {
        sys::getsockopt::<XdpStatistics>(&self.fd, sys::SOL_XDP, sys::XDP_STATISTICS)
            .ok()
            .map(|(s, _)| s)
    }

    /// Whether a frame is waiting on the RX ring (without consuming it).
    pub fn rx_ready(&mut self) -> bool {
        self.rx.gathered || self.rx.ring.available() > 0
    }

    /// Waits up to `timeout` for the socket to become readable (tests and simple loops;
    /// the shard polls [`Link::wait_fd`] itself).
    pub fn poll_rx(&mut self, timeout: Duration) -> io::Result<bool> {
        let end = Instant::now() + timeout;
        loop {
            if self.rx_ready() || sys::poll_readable(&self.fd)? {
                return Ok(true);
            }
            if Instant::now() >= end {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Lends the stack one received frame, straight from the UMEM (or, for a multi-buffer
/// frame, from the buffer it was gathered into).
#[derive(Debug)]
pub struct XdpRxToken<'a> {
    rx: &'a mut RxSide,
    /// The single-buffer frame's descriptor; `None` for a gathered frame.
    desc: Option<XdpDesc>,
}

impl phy::RxToken for XdpRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let rx = self.rx;
        let Some(desc) = self.desc else {
            let r = f(&rx.gather);
            rx.frames += 1;
            rx.bytes += rx.gather.len() as u64;
            rx.gather.clear();
            rx.gathered = false;
            return r;
        };
        // `receive` checked the descriptor; an empty frame is what a bad one would yield.
        let r = f(rx.area.frame(desc.addr, desc.len).unwrap_or(&[]));
        rx.consume_desc(desc.addr);
        rx.frames += 1;
        rx.bytes += u64::from(desc.len);
        r
    }
}

/// Lends the stack one free transmit frame; the frame is queued for the next flush.
#[derive(Debug)]
pub struct XdpTxToken<'a> {
    tx: &'a mut TxSide,
}

impl phy::TxToken for XdpTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let tx = self.tx;
        let fits = len <= tx.area.slot_size() as usize;
        let addr = if fits { tx.free.pop() } else { None };
        let Some(addr) = addr else {
            // Oversized (or, impossibly, no frame): let the stack write somewhere, drop it.
            tx.dropped += 1;
            return f(&mut vec![0u8; len]);
        };
        let len32 = len as u32;
        let Some(buf) = tx.area.frame_mut(addr, len32) else {
            tx.free.push(addr);
            tx.dropped += 1;
            return f(&mut vec![0u8; len]);
        };
        let r = f(buf);
        // One descriptor per UMEM frame the bytes cover; `ready` made room for `span`.
        let fs = tx.area.frame_size();
        let parts = len32.div_ceil(fs).max(1);
        if tx.ring.free(parts) >= parts {
            for i in 0..parts {
                let last = i + 1 == parts;
                let pushed = tx.ring.push(XdpDesc {
                    addr: addr + u64::from(i * fs),
                    len: if last { len32 - i * fs } else { fs },
                    options: if last { 0 } else { sys::XDP_PKT_CONTD },
                });
                debug_assert!(pushed, "checked free slots");
            }
            tx.frames += 1;
            tx.bytes += u64::from(len32);
        } else {
            tx.free.push(addr);
            tx.dropped += 1;
        }
        r
    }
}

impl Device for XdpLink {
    type RxToken<'a> = XdpRxToken<'a>;
    type TxToken<'a> = XdpTxToken<'a>;

    fn receive(
        &mut self,
        _timestamp: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let desc = self.rx.next_frame()?;
        if !self.tx.ready() {
            return None;
        }
        Some((
            XdpRxToken {
                rx: &mut self.rx,
                desc,
            },
            XdpTxToken { tx: &mut self.tx },
        ))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        if !self.tx.ready() {
            self.tx.dropped += 1;
            return None;
        }
        Some(XdpTxToken { tx: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.frame_len;
        caps.max_burst_size = Some(BURST);
        caps
    }
}

impl Link for XdpLink {
    fn describe(&self) -> String {
        format!(
            "af_xdp {} q{} {} {}",
            self.ifname,
            self.queue,
            self.program.mode(),
            if self.zero_copy { "zerocopy" } else { "copy" }
        )
    }

    fn flush(&mut self) -> io::Result<()> {
        self.submit_tx()?;
        self.tx.reap();
        self.refill();
        Ok(())
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn prepare_wait(&mut self) -> bool {
        if self.rx.ring.available() > 0 || !self.rx.refill.is_empty() || self.rx.gathered {
            return false;
        }
        // Frames queued but unsent would wait for the next wakeup: flush them first.
        if self.tx.ring.unpublished() > 0 {
            return false;
        }
        !(self.tx.ring.needs_wakeup() && self.tx.ring.in_kernel() > 0)
    }

    fn stats(&self) -> LinkStats {
        let kernel = self.kernel_stats().unwrap_or_default();
        LinkStats {
            rx_frames: self.rx.frames,
            rx_bytes: self.rx.bytes,
            tx_frames: self.tx.frames,
            tx_bytes: self.tx.bytes,
            rx_dropped: self.rx.dropped + kernel.rx_dropped + kernel.rx_ring_full,
            tx_dropped: self.tx.dropped,
            kicks: self.kicks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_is_send() {
        fn send<T: Send>() {}
        send::<XdpLink>();
        send::<XdpProgram>();
        fn sync<T: Sync>() {}
        sync::<XdpProgram>();
    }
}
