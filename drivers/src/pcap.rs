//! The pcap wrapper: records every frame another link receives or sends into a classic pcap
//! file (microsecond timestamps, `LINKTYPE_ETHERNET`), readable by Wireshark and tcpdump.
//!
//! The timestamp of each record is the `Instant` smoltcp passed to `receive`/`transmit`; the
//! wrapper reads no clock. The shard derives that instant from wall-clock time (microseconds
//! since the Unix epoch), so the file shows real times; a test on virtual time gets records
//! stamped with its virtual clock, counted from 1970-01-01.
//!
//! Recording never breaks the link: the first write error on the file is logged once and
//! counted, recording stops, and frames keep flowing through the inner link.
//!
//! Not here: filtering, rotation, pcapng.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::os::fd::RawFd;

use smoltcp::phy::{self, DeviceCapabilities, PacketMeta};
use smoltcp::time::Instant;

use crate::link::{Link, LinkStats};

/// Magic number of a classic pcap file with microsecond timestamps.
pub const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// `LINKTYPE_ETHERNET`: every record starts with an Ethernet header.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The most bytes of one frame a record holds; longer frames are cut (`orig_len` keeps the
/// real length).
pub const SNAPLEN: u32 = 65_535;

/// Writes pcap records; shared by the link and the tokens it lends out.
struct Recorder {
    /// `None` once recording stopped after an error.
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    records: u64,
    errors: u64,
}

impl Recorder {
    fn record(&mut self, ts: Instant, frame: &[u8]) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let micros = ts.total_micros().max(0);
        let secs = u32::try_from(micros / 1_000_000).unwrap_or(u32::MAX);
        let usecs = (micros % 1_000_000) as u32;
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(SNAPLEN);
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&secs.to_le_bytes());
        header[4..8].copy_from_slice(&usecs.to_le_bytes());
        header[8..12].copy_from_slice(&incl_len.to_le_bytes());
        header[12..16].copy_from_slice(&orig_len.to_le_bytes());
        let body = frame.get(..incl_len as usize).unwrap_or(frame);
        match out.write_all(&header).and_then(|()| out.write_all(body)) {
            Ok(()) => self.records += 1,
            Err(e) => self.fail(&e),
        }
    }

    fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if let Err(e) = out.flush() {
                self.fail(&e);
            }
        }
    }

    fn fail(&mut self, e: &io::Error) {
        self.errors += 1;
        if self.out.take().is_some() {
            log::warn!("pcap: writing the capture failed ({e}); recording stopped");
        }
    }
}

/// A link that records the frames of the link it wraps into a pcap stream.
///
/// Every frame smoltcp receives from, or hands to, the inner link is written as one record,
/// stamped with the `Instant` smoltcp passed along. Output is buffered and flushed on
/// [`Link::flush`] (once per shard poll round) and, best effort, when the link is dropped.
pub struct PcapLink<L: Link> {
    inner: L,
    rec: RefCell<Recorder>,
}

impl<L: Link> PcapLink<L> {
    /// Wraps `inner`, writing the pcap file header to `out` at once.
    ///
    /// # Errors
    /// The error from writing the 24-byte file header; later write errors do not surface
    /// here but stop the recording (see [`PcapLink::write_errors`]).
    pub fn new(inner: L, out: impl Write + Send + 'static) -> io::Result<PcapLink<L>> {
        let mut out: BufWriter<Box<dyn Write + Send>> = BufWriter::new(Box::new(out));
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&PCAP_MAGIC_MICROS.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        out.flush()?;
        Ok(PcapLink {
            inner,
            rec: RefCell::new(Recorder {
                out: Some(out),
                records: 0,
                errors: 0,
            }),
        })
    }

    /// The wrapped link.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The wrapped link, mutably (frames moved through it directly are not recorded).
    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    /// Records handed to the (buffered) capture stream so far; those buffered when a write
    /// error stopped the recording may be missing from the file.
    pub fn records(&self) -> u64 {
        self.rec.borrow().records
    }

    /// Write errors met on the capture stream (recording stops at the first one).
    pub fn write_errors(&self) -> u64 {
        self.rec.borrow().errors
    }

    /// Whether frames are still being recorded.
    pub fn is_recording(&self) -> bool {
        self.rec.borrow().out.is_some()
    }

    /// Flushes the capture and returns the wrapped link.
    pub fn into_inner(self) -> L {
        self.rec.borrow_mut().flush();
        self.inner
    }
}

impl<L: Link> fmt::Debug for PcapLink<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rec = self.rec.borrow();
        f.debug_struct("PcapLink")
            .field("inner", &self.inner.describe())
            .field("recording", &rec.out.is_some())
            .field("records", &rec.records)
            .field("errors", &rec.errors)
            .finish()
    }
}

impl<L: Link> phy::Device for PcapLink<L> {
    type RxToken<'a>
        = PcapRxToken<'a, L::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = PcapTxToken<'a, L::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.inner.receive(timestamp)?;
        Some((
            PcapRxToken {
                inner: rx,
                rec: &self.rec,
                timestamp,
            },
            PcapTxToken {
                inner: tx,
                rec: &self.rec,
                timestamp,
            },
        ))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let tx = self.inner.transmit(timestamp)?;
        Some(PcapTxToken {
            inner: tx,
            rec: &self.rec,
            timestamp,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

impl<L: Link> Link for PcapLink<L> {
    fn describe(&self) -> String {
        format!("{} +pcap", self.inner.describe())
    }

    /// Flushes the inner link, then the buffered capture (a capture error is only counted).
    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.rec.get_mut().flush();
        r
    }

    fn wait_fd(&self) -> Option<RawFd> {
        self.inner.wait_fd()
    }

    fn prepare_wait(&mut self) -> bool {
        self.inner.prepare_wait()
    }

    fn stats(&self) -> LinkStats {
        self.inner.stats()
    }
}

/// Records one frame through the shared recorder; a recorder already in use (which the
/// token protocol never causes) skips the record rather than panicking.
fn record(rec: &RefCell<Recorder>, ts: Instant, frame: &[u8]) {
    if let Ok(mut rec) = rec.try_borrow_mut() {
        rec.record(ts, frame);
    }
}

/// A received frame of the inner link, recorded when consumed.
#[derive(Debug)]
pub struct PcapRxToken<'a, T> {
    inner: T,
    rec: &'a RefCell<Recorder>,
    timestamp: Instant,
}

impl<T: phy::RxToken> phy::RxToken for PcapRxToken<'_, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let (rec, ts) = (self.rec, self.timestamp);
        self.inner.consume(|frame| {
            record(rec, ts, frame);
            f(frame)
        })
    }

    fn meta(&self) -> PacketMeta {
        self.inner.meta()
    }
}

/// A transmit slot of the inner link; the frame is recorded once smoltcp has built it.
#[derive(Debug)]
pub struct PcapTxToken<'a, T> {
    inner: T,
    rec: &'a RefCell<Recorder>,
    timestamp: Instant,
}

impl<T: phy::TxToken> phy::TxToken for PcapTxToken<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let (rec, ts) = (self.rec, self.timestamp);
        self.inner.consume(len, |frame| {
            let r = f(frame);
            record(rec, ts, frame);
            r
        })
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.inner.set_meta(meta);
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("recording", &self.out.is_some())
            .field("records", &self.records)
            .field("errors", &self.errors)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pipe::{pair, PipeLink};
    use smoltcp::phy::{Device, RxToken, TxToken};
    use std::sync::{Arc, Mutex};

    /// A `Write` whose bytes the test can read back; fails once `limit` bytes were written.
    #[derive(Clone)]
    struct Shared {
        bytes: Arc<Mutex<Vec<u8>>>,
        limit: usize,
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut bytes = self.bytes.lock().unwrap();
            if bytes.len() + buf.len() > self.limit {
                return Err(io::Error::other("disk full"));
            }
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn shared(limit: usize) -> Shared {
        Shared {
            bytes: Arc::new(Mutex::new(Vec::new())),
            limit,
        }
    }

    fn send<D: Device>(link: &mut D, ts: Instant, bytes: &[u8]) {
        let tok = link.transmit(ts).unwrap();
        tok.consume(bytes.len(), |buf| buf.copy_from_slice(bytes));
    }

    fn recv<D: Device>(link: &mut D, ts: Instant) -> Vec<u8> {
        let (rx, _tx) = link.receive(ts).unwrap();
        rx.consume(|b| b.to_vec())
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Parses a capture into (seconds, microseconds, frame) records.
    fn parse(b: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
        assert_eq!(u32_at(b, 0), PCAP_MAGIC_MICROS);
        assert_eq!(&b[4..8], &[2, 0, 4, 0]);
        assert_eq!(u32_at(b, 16), 65_535);
        assert_eq!(u32_at(b, 20), 1);
        let mut out = Vec::new();
        let mut at = 24;
        while at < b.len() {
            let (sec, usec, incl, orig) = (
                u32_at(b, at),
                u32_at(b, at + 4),
                u32_at(b, at + 8) as usize,
                u32_at(b, at + 12) as usize,
            );
            assert_eq!(incl, orig);
            out.push((sec, usec, b[at + 16..at + 16 + incl].to_vec()));
            at += 16 + incl;
        }
        assert_eq!(at, b.len());
        out
    }

    fn wrapped(limit: usize) -> (PcapLink<PipeLink>, PipeLink, Shared) {
        let (a, b) = pair(8, 1500);
        let out = shared(limit);
        (PcapLink::new(a, out.clone()).unwrap(), b, out)
    }

    #[test]
    fn wrapper_is_send() {
        fn is_send<T: Send>() {}
        is_send::<PcapLink<PipeLink>>();
    }

    #[test]
    fn records_both_directions_with_the_given_timestamps() {
        let (mut a, mut b, out) = wrapped(usize::MAX);
        send(&mut a, Instant::from_micros(1_500_000), &[1; 60]);
        send(&mut b, Instant::ZERO, &[2; 70]);
        assert_eq!(recv(&mut b, Instant::ZERO), vec![1; 60]);
        assert_eq!(recv(&mut a, Instant::from_secs(3)), vec![2; 70]);
        a.flush().unwrap();
        let recs = parse(&out.bytes.lock().unwrap());
        assert_eq!(recs, vec![(1, 500_000, vec![1; 60]), (3, 0, vec![2; 70])]);
        assert_eq!(a.records(), 2);
        assert_eq!(a.describe(), "pipe end 0 (8 frames) +pcap");
        assert_eq!(a.stats().tx_frames, 1);
        assert_eq!(a.capabilities().max_transmission_unit, 1514);
    }

    #[test]
    fn reply_token_from_receive_is_recorded_too() {
        let (mut a, mut b, out) = wrapped(usize::MAX);
        send(&mut b, Instant::ZERO, &[5; 64]);
        let (rx, tx) = a.receive(Instant::from_millis(10)).unwrap();
        rx.consume(|frame| {
            tx.consume(frame.len(), |buf| buf.copy_from_slice(frame));
        });
        drop(a.into_inner());
        let recs = parse(&out.bytes.lock().unwrap());
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1], (0, 10_000, vec![5; 64]));
        assert_eq!(recv(&mut b, Instant::ZERO), vec![5; 64]);
    }

    #[test]
    fn write_error_stops_recording_but_not_the_link() {
        // Room for the header and one 60-byte record, not two.
        let (mut a, mut b, out) = wrapped(24 + 16 + 60 + 10);
        for i in 0..5u8 {
            send(&mut a, Instant::ZERO, &[i; 60]);
            a.flush().unwrap();
        }
        for i in 0..5u8 {
            assert_eq!(recv(&mut b, Instant::ZERO), vec![i; 60]);
        }
        assert!(!a.is_recording());
        assert_eq!(a.write_errors(), 1);
        // The second record reached the buffer; flushing it failed.
        assert_eq!(a.records(), 2);
        assert_eq!(parse(&out.bytes.lock().unwrap()).len(), 1);
    }

    #[test]
    fn tcpdump_reads_the_file_when_installed() {
        let path = std::env::temp_dir().join(format!("sixstack-pcap-{}.pcap", std::process::id()));
        let (a, mut b) = pair(8, 1500);
        let mut a = PcapLink::new(a, std::fs::File::create(&path).unwrap()).unwrap();
        // A broadcast ARP request for 10.0.0.2 from 10.0.0.1.
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        send(&mut a, Instant::from_secs(1_700_000_000), &arp);
        let _ = recv(&mut b, Instant::ZERO);
        drop(a);
        let run = std::process::Command::new("tcpdump")
            .args(["-n", "-tt", "-r"])
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let Ok(run) = run else {
            eprintln!("tcpdump not installed; skipped");
            return;
        };
        let text = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(text.starts_with("1700000000.000000"), "{text}");
        assert!(
            text.contains("ARP, Request who-has 10.0.0.2 tell 10.0.0.1"),
            "{text}"
        );
    }
}
