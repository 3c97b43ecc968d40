//! The fault link driven directly through smoltcp's `Device` API over a pipe pair, on
//! virtual time: one side transmits, the other receives.
#![allow(clippy::unwrap_used)]

use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::{Duration, Instant};

use super::*;
use crate::pipe::{pair, PipeLink};

fn at_ms(ms: i64) -> Instant {
    Instant::from_millis(ms)
}

fn send<D: Device>(link: &mut D, ts: Instant, bytes: &[u8]) -> bool {
    match link.transmit(ts) {
        Some(tok) => {
            tok.consume(bytes.len(), |buf| buf.copy_from_slice(bytes));
            true
        }
        None => false,
    }
}

fn recv<D: Device>(link: &mut D, ts: Instant) -> Option<Vec<u8>> {
    let (rx, _tx) = link.receive(ts)?;
    Some(rx.consume(|b| b.to_vec()))
}

fn recv_all<D: Device>(link: &mut D, ts: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| recv(link, ts)).collect()
}

/// A 60-byte frame carrying `n`: a made-up Ethernet header, then `n` big-endian, then
/// filler.
fn numbered(n: u32) -> Vec<u8> {
    let mut f = vec![0xee; 14];
    f.extend_from_slice(&n.to_be_bytes());
    f.resize(60, n as u8);
    f
}

fn number(f: &[u8]) -> u32 {
    u32::from_be_bytes(f[14..18].try_into().unwrap())
}

/// The sending end wrapped with transmit faults `d`, and the plain receiving end.
fn tx_pair(seed: u64, d: FaultDirection) -> (FaultLink<PipeLink>, PipeLink) {
    let (a, b) = pair(64, 1500);
    let cfg = FaultConfig {
        seed,
        tx: d,
        ..FaultConfig::default()
    };
    (FaultLink::new(a, cfg).unwrap(), b)
}

/// The plain sending end, and the receiving end wrapped with receive faults `d`.
fn rx_pair(seed: u64, d: FaultDirection) -> (PipeLink, FaultLink<PipeLink>) {
    let (a, b) = pair(64, 1500);
    let cfg = FaultConfig {
        seed,
        rx: d,
        ..FaultConfig::default()
    };
    (a, FaultLink::new(b, cfg).unwrap())
}

/// Sends frames `0..n` one by one through transmit faults at time `ts`, draining the
/// receiver as it goes; returns what arrived.
fn through_tx(link: &mut FaultLink<PipeLink>, peer: &mut PipeLink, n: u32) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for i in 0..n {
        assert!(send(link, Instant::ZERO, &numbered(i)));
        link.flush().unwrap();
        got.extend(recv_all(peer, Instant::ZERO));
    }
    // Frames held back for reordering leave after the hold time at the latest.
    let late = Instant::ZERO + Duration::from_micros(REORDER_MAX_HOLD_US as u64);
    let _ = link.transmit(late);
    link.flush().unwrap();
    got.extend(recv_all(peer, late));
    got
}

/// The same through receive faults.
fn through_rx(peer: &mut PipeLink, link: &mut FaultLink<PipeLink>, n: u32) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for i in 0..n {
        assert!(send(peer, Instant::ZERO, &numbered(i)));
        got.extend(recv_all(link, Instant::ZERO));
    }
    let late = Instant::ZERO + Duration::from_micros(REORDER_MAX_HOLD_US as u64);
    got.extend(recv_all(link, late));
    got
}

#[test]
fn wrapper_is_send() {
    fn is_send<T: Send>() {}
    is_send::<FaultLink<PipeLink>>();
}

#[test]
fn zero_config_passes_everything_untouched() {
    let (a, b) = pair(8, 1500);
    let mut a = FaultLink::new(a, FaultConfig::default()).unwrap();
    let mut b = FaultLink::new(b, FaultConfig::default()).unwrap();
    for i in 0..1000 {
        assert!(send(&mut a, Instant::ZERO, &numbered(i)));
        assert!(send(&mut b, Instant::ZERO, &numbered(i + 7)));
        // No flush needed: the frames went straight into the pipe.
        assert_eq!(recv(&mut b, Instant::ZERO).unwrap(), numbered(i));
        assert_eq!(recv(&mut a, Instant::ZERO).unwrap(), numbered(i + 7));
    }
    assert!(recv(&mut a, Instant::ZERO).is_none());
    let s = a.fault_stats();
    let clean = FaultCounters {
        frames: 1000,
        passed: 1000,
        ..FaultCounters::default()
    };
    assert_eq!((s.rx, s.tx), (clean, clean));
    assert_eq!(a.held(), (0, 0));
    assert!(a.prepare_wait());
    assert_eq!(a.describe(), "pipe end 0 (8 frames) +fault(seed 1)");
    assert_eq!(a.stats().tx_frames, 1000);
    assert_eq!(a.capabilities().max_transmission_unit, 1514);
}

#[test]
fn loss_rate_is_within_tolerance_both_ways() {
    let lossy = FaultDirection {
        loss: 0.05,
        ..FaultDirection::default()
    };
    let (mut a, mut b) = tx_pair(3, lossy);
    let got = through_tx(&mut a, &mut b, 10_000);
    let lost = 10_000 - got.len();
    // Expected 500, standard deviation about 22.
    assert!((400..=600).contains(&lost), "{lost} lost");
    assert_eq!(a.fault_stats().tx.lost as usize, lost);
    assert_eq!(a.fault_stats().tx.passed as usize, got.len());
    // What arrives is intact and in order.
    let nums: Vec<u32> = got.iter().map(|f| number(f)).collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]));
    assert!(got.iter().all(|f| *f == numbered(number(f))));

    let (mut a, mut b) = rx_pair(3, lossy);
    let got = through_rx(&mut a, &mut b, 10_000);
    let lost = 10_000 - got.len();
    assert!((400..=600).contains(&lost), "{lost} lost");
    assert_eq!(b.fault_stats().rx.lost as usize, lost);
    assert_eq!(b.fault_stats().tx, FaultCounters::default());
}

#[test]
fn duplication_doubles_frames() {
    let dup = FaultDirection {
        duplicate: 1.0,
        ..FaultDirection::default()
    };
    let (mut a, mut b) = tx_pair(1, dup);
    let got = through_tx(&mut a, &mut b, 100);
    assert_eq!(got.len(), 200);
    for (i, two) in got.chunks(2).enumerate() {
        assert_eq!(two[0], numbered(i as u32));
        assert_eq!(two[1], numbered(i as u32));
    }
    assert_eq!(a.fault_stats().tx.duplicated, 100);
    let (mut a, mut b) = rx_pair(1, dup);
    assert_eq!(through_rx(&mut a, &mut b, 100).len(), 200);
}

#[test]
fn reordering_changes_order_but_loses_nothing() {
    let reorder = FaultDirection {
        reorder: 0.2,
        ..FaultDirection::default()
    };
    for (seed, rx) in [(5, false), (6, true)] {
        let (got, stats) = if rx {
            let (mut a, mut b) = rx_pair(seed, reorder);
            (through_rx(&mut a, &mut b, 1000), b.fault_stats().rx)
        } else {
            let (mut a, mut b) = tx_pair(seed, reorder);
            (through_tx(&mut a, &mut b, 1000), a.fault_stats().tx)
        };
        let nums: Vec<u32> = got.iter().map(|f| number(f)).collect();
        let mut sorted = nums.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "nothing lost");
        let swaps = nums.windows(2).filter(|w| w[0] > w[1]).count() as u64;
        assert!(swaps > 100, "{swaps} swaps");
        assert_eq!(swaps, stats.reordered);
        // A frame held back is overtaken by exactly the next one.
        for (pos, n) in nums.iter().enumerate() {
            assert!(n.abs_diff(pos as u32) <= 1, "{n} at {pos}");
        }
    }
}

#[test]
fn a_frame_held_back_alone_leaves_after_the_hold_time() {
    let reorder = FaultDirection {
        reorder: 1.0,
        ..FaultDirection::default()
    };
    let (mut a, mut b) = rx_pair(1, reorder);
    assert!(send(&mut a, at_ms(0), &numbered(0)));
    assert!(recv(&mut b, at_ms(0)).is_none());
    assert!(!b.prepare_wait(), "a held frame keeps the shard polling");
    assert_eq!(b.next_release(), Some(at_ms(10)));
    assert!(recv(&mut b, at_ms(9)).is_none());
    assert_eq!(recv(&mut b, at_ms(10)).unwrap(), numbered(0));
    assert_eq!(b.fault_stats().rx.reordered, 0);
    assert!(b.prepare_wait());
}

#[test]
fn corruption_flips_exactly_one_byte_past_the_ethernet_header() {
    let corrupt = FaultDirection {
        corrupt: 1.0,
        ..FaultDirection::default()
    };
    let (mut a, mut b) = tx_pair(9, corrupt);
    let got = through_tx(&mut a, &mut b, 500);
    assert_eq!(got.len(), 500);
    let mut places = std::collections::BTreeSet::new();
    for (i, f) in got.iter().enumerate() {
        let want = numbered(i as u32);
        let diff: Vec<usize> = (0..60).filter(|&k| f[k] != want[k]).collect();
        assert_eq!(diff.len(), 1, "frame {i}: {diff:?}");
        assert!(diff[0] >= 14);
        places.insert(diff[0]);
    }
    assert!(places.len() > 30, "the byte is picked at random");
    assert_eq!(a.fault_stats().tx.corrupted, 500);
    // A frame with nothing after the Ethernet header is left alone.
    assert!(send(&mut a, Instant::ZERO, &[1; 14]));
    a.flush().unwrap();
    assert_eq!(recv(&mut b, Instant::ZERO).unwrap(), vec![1; 14]);
    // Receive side too.
    let (mut a, mut b) = rx_pair(9, corrupt);
    let got = through_rx(&mut a, &mut b, 50);
    for (i, f) in got.iter().enumerate() {
        let want = numbered(i as u32);
        assert_eq!((0..60).filter(|&k| f[k] != want[k]).count(), 1);
    }
}

#[test]
fn delay_holds_frames_until_their_instant() {
    let delay = FaultDirection {
        delay_ms: 10.0,
        ..FaultDirection::default()
    };
    let (mut a, mut b) = tx_pair(1, delay);
    assert!(send(&mut a, at_ms(100), &numbered(1)));
    assert!(send(&mut a, at_ms(103), &numbered(2)));
    a.flush().unwrap();
    assert!(recv(&mut b, at_ms(103)).is_none());
    assert!(!a.prepare_wait());
    assert_eq!(a.next_release(), Some(at_ms(110)));
    // A flush alone knows only the latest instant it was given.
    let _ = a.receive(at_ms(109));
    a.flush().unwrap();
    assert!(recv(&mut b, at_ms(109)).is_none());
    let _ = a.receive(at_ms(110));
    assert_eq!(recv_all(&mut b, at_ms(110)), vec![numbered(1)]);
    assert_eq!(a.next_release(), Some(at_ms(113)));
    let _ = a.transmit(at_ms(113));
    assert_eq!(recv_all(&mut b, at_ms(113)), vec![numbered(2)]);
    assert!(a.prepare_wait());
    assert_eq!(a.fault_stats().tx.delayed, 2);

    // Receive side: a frame the pipe already holds waits its turn in the fault link.
    let (mut a, mut b) = rx_pair(1, delay);
    assert!(send(&mut a, at_ms(0), &numbered(1)));
    assert!(recv(&mut b, at_ms(0)).is_none());
    assert!(recv(&mut b, at_ms(9)).is_none());
    assert_eq!(recv(&mut b, at_ms(10)).unwrap(), numbered(1));
}

#[test]
fn jitter_spreads_delays_within_bounds() {
    let jitter = FaultDirection {
        delay_ms: 10.0,
        jitter_ms: 5.0,
        ..FaultDirection::default()
    };
    let (mut a, mut b) = rx_pair(4, jitter);
    for i in 0..40 {
        assert!(send(&mut a, at_ms(0), &numbered(i)));
    }
    assert!(recv(&mut b, at_ms(0)).is_none());
    assert_eq!(b.held(), (40, 0));
    let mut arrivals = Vec::new();
    for us in (0..=20_000).step_by(100) {
        let now = Instant::from_micros(us);
        for f in recv_all(&mut b, now) {
            arrivals.push((us, number(&f)));
        }
    }
    assert_eq!(arrivals.len(), 40);
    assert!(arrivals
        .iter()
        .all(|&(us, _)| (5_000..=15_000).contains(&us)));
    let order: Vec<u32> = arrivals.iter().map(|&(_, n)| n).collect();
    assert!(order.windows(2).any(|w| w[0] > w[1]), "jitter reorders");
}

#[test]
fn rate_limit_spaces_frames_out() {
    // 8 Mbit/s: one byte per microsecond, a 1000-byte frame every millisecond.
    let rate = FaultDirection {
        rate_mbit: Some(8.0),
        ..FaultDirection::default()
    };
    let (mut a, mut b) = tx_pair(1, rate);
    for _ in 0..5 {
        assert!(send(&mut a, at_ms(0), &[7; 1000]));
    }
    a.flush().unwrap();
    assert_eq!(
        recv_all(&mut b, at_ms(0)).len(),
        1,
        "the first leaves at once"
    );
    assert_eq!(a.next_release(), Some(at_ms(1)));
    for ms in 1..5 {
        let _ = a.receive(Instant::from_micros(ms * 1000 - 1));
        assert!(recv(&mut b, at_ms(ms)).is_none());
        let _ = a.receive(at_ms(ms));
        assert_eq!(recv_all(&mut b, at_ms(ms)).len(), 1);
    }
    assert_eq!(a.fault_stats().tx.shaped, 4);
    // The link was idle meanwhile: the next frame leaves at once.
    assert!(send(&mut a, at_ms(50), &[7; 1000]));
    a.flush().unwrap();
    assert_eq!(recv_all(&mut b, at_ms(50)).len(), 1);
}

#[test]
fn full_queues_drop_on_receive_and_refuse_transmit() {
    let small = FaultDirection {
        delay_ms: 5.0,
        queue_limit: 5,
        ..FaultDirection::default()
    };
    let (mut a, mut b) = rx_pair(1, small);
    for i in 0..8 {
        assert!(send(&mut a, at_ms(0), &numbered(i)));
    }
    assert!(recv(&mut b, at_ms(0)).is_none());
    let got = recv_all(&mut b, at_ms(5));
    assert_eq!(got, (0..5).map(numbered).collect::<Vec<_>>());
    assert_eq!(b.fault_stats().rx.overflow, 3);

    let (mut a, mut b) = tx_pair(1, small);
    for i in 0..5 {
        assert!(send(&mut a, at_ms(0), &numbered(i)));
    }
    assert!(a.transmit(at_ms(0)).is_none(), "the stack is told to wait");
    let _ = a.receive(at_ms(5));
    assert_eq!(recv_all(&mut b, at_ms(5)).len(), 5);
    assert!(a.transmit(at_ms(5)).is_some());
}

#[test]
fn burst_loss_drops_the_end_of_each_period() {
    let burst = FaultDirection {
        burst_loss: Some(BurstLoss {
            every: 10,
            length: 3,
        }),
        ..FaultDirection::default()
    };
    let (mut a, mut b) = tx_pair(1, burst);
    let got: Vec<u32> = through_tx(&mut a, &mut b, 30)
        .iter()
        .map(|f| number(f))
        .collect();
    let want: Vec<u32> = (0..30).filter(|n| n % 10 < 7).collect();
    assert_eq!(got, want);
    assert_eq!(a.fault_stats().tx.burst_lost, 9);
}

fn everything() -> FaultDirection {
    FaultDirection {
        loss: 0.1,
        duplicate: 0.1,
        reorder: 0.1,
        corrupt: 0.1,
        ..FaultDirection::default()
    }
}

#[test]
fn same_seed_same_outcome() {
    let run = |seed| {
        let (mut a, mut b) = tx_pair(seed, everything());
        through_tx(&mut a, &mut b, 2000)
    };
    let first = run(42);
    assert_eq!(first, run(42));
    assert_ne!(first, run(43));
    // The two directions draw from separate streams.
    let (mut a, mut b) = rx_pair(42, everything());
    assert_ne!(first, through_rx(&mut a, &mut b, 2000));
}

#[test]
fn reply_token_of_receive_goes_through_transmit_faults() {
    let (a, mut b) = pair(8, 1500);
    let cfg = FaultConfig {
        tx: FaultDirection {
            delay_ms: 1.0,
            ..FaultDirection::default()
        },
        ..FaultConfig::default()
    };
    let mut a = FaultLink::new(a, cfg).unwrap();
    assert!(send(&mut b, at_ms(0), &numbered(3)));
    let (rx, tx) = a.receive(at_ms(0)).unwrap();
    rx.consume(|f| tx.consume(f.len(), |buf| buf.copy_from_slice(f)));
    a.flush().unwrap();
    assert!(recv(&mut b, at_ms(0)).is_none());
    let _ = a.receive(at_ms(1));
    assert_eq!(recv(&mut b, at_ms(1)).unwrap(), numbered(3));
    // And the other way round: receive faults only; the reply leaves, untouched, at the
    // next flush.
    let (a, mut b) = pair(8, 1500);
    let cfg = FaultConfig {
        rx: everything(),
        ..FaultConfig::default()
    };
    let mut a = FaultLink::new(a, cfg).unwrap();
    assert!(send(&mut b, at_ms(0), &numbered(4)));
    let (rx, tx) = a.receive(at_ms(20)).unwrap();
    rx.consume(|f| tx.consume(f.len(), |buf| buf.copy_from_slice(f)));
    assert!(!a.prepare_wait());
    a.flush().unwrap();
    assert_eq!(recv(&mut b, at_ms(20)).unwrap(), numbered(4));
    assert!(a.prepare_wait());
    let clean = FaultCounters {
        frames: 1,
        passed: 1,
        ..FaultCounters::default()
    };
    assert_eq!(a.fault_stats().tx, clean);
}

#[test]
fn a_bad_config_is_refused() {
    let (a, _b) = pair(8, 1500);
    let mut cfg = FaultConfig::default();
    cfg.rx.duplicate = -0.5;
    let e = FaultLink::new(a, cfg).unwrap_err();
    assert_eq!((e.direction, e.field), (Direction::Rx, "duplicate"));
}

/// A `Write` whose bytes the test reads back.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_capture_around_the_faults_shows_what_the_stack_sent() {
    // The appliance's order: pcap outside, faults inside.
    let (a, mut b) = pair(8, 1500);
    let cfg = FaultConfig {
        tx: FaultDirection {
            loss: 1.0,
            ..FaultDirection::default()
        },
        ..FaultConfig::default()
    };
    let out = Shared::default();
    let mut a = crate::pcap::PcapLink::new(FaultLink::new(a, cfg).unwrap(), out.clone()).unwrap();
    assert!(send(&mut a, at_ms(0), &numbered(1)));
    a.flush().unwrap();
    assert!(recv(&mut b, at_ms(0)).is_none(), "lost on the way out");
    assert_eq!(a.records(), 1, "but recorded as sent");
    assert_eq!(a.inner().fault_stats().tx.lost, 1);
    assert_eq!(out.0.lock().unwrap().len(), 24 + 16 + 60);
    assert_eq!(a.describe(), "pipe end 0 (8 frames) +fault(seed 1) +pcap");
}
