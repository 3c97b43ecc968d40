//! Protocol tests over the in-memory pipe driver: two shards in one thread on virtual
//! time, no namespaces, deterministic. The same services and sockets as on a real link.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use sixstack_drivers::pipe::{self, PipeLink};
use sixstack_stack::smoltcp::time::Instant;
use sixstack_stack::smoltcp::wire::IpListenEndpoint;
use sixstack_stack::{IpAddress, Shard, StackConfig, TcpListener, TcpStream, UdpSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const A4: [u8; 4] = [10, 0, 0, 1];
const B4: [u8; 4] = [10, 0, 0, 2];

fn cfg(host: u8) -> StackConfig {
    let mut c = StackConfig::new([0x02, 0, 0, 0, 0, host]);
    c.ipv4 = Some((std::net::Ipv4Addr::new(10, 0, 0, host), 24));
    c.ipv6 = vec![(format!("fd00::{host}").parse().unwrap(), 64)];
    c.seed = u64::from(host) * 7919;
    c
}

fn pair() -> (Shard<PipeLink>, Shard<PipeLink>) {
    let (la, lb) = pipe::pair(1024, 1500);
    (
        Shard::new(la, cfg(1)).unwrap(),
        Shard::new(lb, cfg(2)).unwrap(),
    )
}

/// Runs both shards on virtual time until `done` or `limit` of virtual time passes.
fn drive(
    a: &mut Shard<PipeLink>,
    b: &mut Shard<PipeLink>,
    limit: Duration,
    done: impl Fn() -> bool,
) {
    thread_local! {
        // Virtual time goes on from one call to the next within a test, from a start after
        // the shards' own clock was read (the housekeeping it schedules, such as reaping
        // closed sockets, is due relative to that).
        static NOW: std::cell::Cell<Instant> = std::cell::Cell::new(Instant::from_micros(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64 + 1_000_000),
        ));
    }
    let mut now = NOW.with(|n| n.get());
    let end = now + sixstack_stack::smoltcp::time::Duration::from_micros(limit.as_micros() as u64);
    while now < end {
        let na = a.poll_at(now);
        let nb = b.poll_at(now);
        NOW.with(|n| n.set(now));
        if done() {
            return;
        }
        let soon = [na, nb].into_iter().flatten().min();
        now = match soon {
            Some(t) if t > now => {
                t.min(now + sixstack_stack::smoltcp::time::Duration::from_millis(1))
            }
            _ => now + sixstack_stack::smoltcp::time::Duration::from_micros(20),
        };
    }
    panic!("not done within {limit:?} of virtual time");
}

fn ip(a: [u8; 4]) -> IpAddress {
    IpAddress::v4(a[0], a[1], a[2], a[3])
}

fn v6(host: u8) -> IpAddress {
    IpAddress::Ipv6(format!("fd00::{host}").parse().unwrap())
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn echo_roundtrip(dst: IpAddress, size: usize) {
    let (mut a, mut b) = pair();
    let nb = b.net();
    nb.spawn(sixstack_basic::serve_tcp(
        nb.clone(),
        sixstack_basic::Kind::Echo,
        7,
    ));
    let na = a.net();
    let result = Rc::new(RefCell::new(None));
    let r2 = result.clone();
    na.spawn({
        let na = na.clone();
        async move {
            let r: std::io::Result<Vec<u8>> = async {
                let s = TcpStream::connect(&na, (dst, 7)).await?;
                let data = pattern(size);
                let (mut back, mut off) = (Vec::new(), 0);
                let mut s = s;
                let mut buf = vec![0u8; 8192];
                while back.len() < size {
                    if off < size {
                        let end = (off + 4096).min(size);
                        s.write_all(&data[off..end]).await?;
                        off = end;
                        if off == size {
                            s.shutdown().await?;
                        }
                    }
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    back.extend_from_slice(&buf[..n]);
                }
                Ok(back)
            }
            .await;
            *r2.borrow_mut() = Some(r.map_err(|e| e.to_string()));
        }
    });
    drive(&mut a, &mut b, Duration::from_secs(60), || {
        result.borrow().is_some()
    });
    assert!(b.stats().link.rx_bytes as usize > size, "{:?}", b.stats());
    let back = result.borrow_mut().take().unwrap().unwrap();
    assert_eq!(back.len(), size);
    assert!(back == pattern(size));
}

#[test]
fn tcp_echo_v4_small_and_large() {
    echo_roundtrip(ip(B4), 1);
    echo_roundtrip(ip(B4), 1 << 20);
}

#[test]
fn tcp_echo_v6() {
    echo_roundtrip(v6(2), 100_000);
}

#[test]
fn listen_backlog_takes_a_burst_of_syns() {
    let (mut a, mut b) = pair();
    let nb = b.net();
    let accepted = Rc::new(RefCell::new(0usize));
    // The server accepts nothing until all clients are established: only the backlog of
    // ready listening sockets can take the burst.
    let listener = Rc::new(
        TcpListener::bind_with_backlog(
            &nb,
            IpListenEndpoint {
                addr: None,
                port: 80,
            },
            40,
        )
        .unwrap(),
    );
    let na = a.net();
    let established = Rc::new(RefCell::new(Vec::new()));
    for _ in 0..40 {
        let (na2, est) = (na.clone(), established.clone());
        na.spawn(async move {
            let r = TcpStream::connect(&na2, (ip(B4), 80)).await;
            est.borrow_mut().push(r.map_err(|e| e.kind()));
            // keep the connection open for the accept phase
            na2.sleep(Duration::from_secs(5)).await;
        });
    }
    drive(&mut a, &mut b, Duration::from_secs(10), || {
        established.borrow().len() == 40
    });
    assert!(
        established.borrow().iter().all(|r| r.is_ok()),
        "{:?}",
        established.borrow()
    );
    let (l2, acc) = (listener.clone(), accepted.clone());
    nb.spawn(async move {
        let mut keep = Vec::new();
        for _ in 0..40 {
            keep.push(l2.accept().await.unwrap());
            *acc.borrow_mut() += 1;
        }
    });
    drive(&mut a, &mut b, Duration::from_secs(2), || {
        *accepted.borrow() == 40
    });
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let (mut a, mut b) = pair();
    let na = a.net();
    let r = Rc::new(RefCell::new(None));
    let r2 = r.clone();
    na.spawn({
        let na = na.clone();
        async move {
            *r2.borrow_mut() = Some(
                TcpStream::connect(&na, (ip(B4), 81))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.kind()),
            );
        }
    });
    drive(&mut a, &mut b, Duration::from_secs(5), || {
        r.borrow().is_some()
    });
    assert_eq!(
        r.borrow_mut().take(),
        Some(Err(std::io::ErrorKind::ConnectionRefused))
    );
}

#[test]
fn udp_echo_and_ping_v4_v6() {
    let (mut a, mut b) = pair();
    let nb = b.net();
    nb.spawn(sixstack_basic::serve_udp(
        nb.clone(),
        sixstack_basic::Kind::Echo,
        7,
    ));
    let na = a.net();
    let out = Rc::new(RefCell::new(Vec::new()));
    let o2 = out.clone();
    na.spawn({
        let na = na.clone();
        async move {
            let s = UdpSocket::bind(
                &na,
                IpListenEndpoint {
                    addr: None,
                    port: 0,
                },
            )
            .unwrap();
            for dst in [ip(B4), v6(2)] {
                s.send_to(b"hello udp", (dst, 7)).await.unwrap();
                let mut buf = [0u8; 64];
                let (n, from) = s.recv_from(&mut buf).await.unwrap();
                o2.borrow_mut().push(format!(
                    "{} {}",
                    from.addr,
                    String::from_utf8_lossy(&buf[..n])
                ));
                let p = na.ping(dst, 1, 100, Duration::from_secs(1)).await.unwrap();
                o2.borrow_mut().push(format!("ping {} {}", p.from, p.bytes));
            }
        }
    });
    drive(&mut a, &mut b, Duration::from_secs(5), || {
        out.borrow().len() == 4
    });
    assert_eq!(
        *out.borrow(),
        vec![
            "10.0.0.2 hello udp",
            "ping 10.0.0.2 100",
            "fd00::2 hello udp",
            "ping fd00::2 100"
        ]
    );
}

/// Random bytes as frames, straight into the shard: no panic, and it keeps serving.
#[test]
fn random_frames_never_panic_the_shard() {
    use rand::{Rng, SeedableRng};
    let (mut a, mut b) = pair();
    let nb = b.net();
    nb.spawn(sixstack_basic::serve_tcp(
        nb.clone(),
        sixstack_basic::Kind::Echo,
        7,
    ));
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mac = [0x02, 0, 0, 0, 0, 2];
    let mut now = Instant::from_secs(1);
    for i in 0..20_000u32 {
        let len = rng.gen_range(0..=1514);
        let mut f: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if len >= 14 && i % 2 == 0 {
            f[..6].copy_from_slice(&mac);
            let et: &[u8] = match i % 6 {
                0 => &[0x08, 0x00],
                2 => &[0x86, 0xdd],
                _ => &[0x08, 0x06],
            };
            f[12..14].copy_from_slice(et);
            if len >= 34 && et == [0x08, 0x00] {
                f[14] = 0x45;
                f[30..34].copy_from_slice(&B4);
            }
            if len >= 54 && et == [0x86, 0xdd] {
                f[14] = 0x60;
                f[38..54]
                    .copy_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
            }
        }
        assert!(b.link().inject(&f), "pipe ring full");
        if i % 64 == 0 {
            b.poll_at(now);
            now += sixstack_stack::smoltcp::time::Duration::from_micros(100);
        }
    }
    for _ in 0..100 {
        b.poll_at(now);
    }
    let st = b.stats();
    assert_eq!(
        st.frames_in, 20_000,
        "every injected frame was taken in: {st:?}"
    );
    echo_after(&mut a, &mut b);
    let _ = A4;
}

fn echo_after(a: &mut Shard<PipeLink>, b: &mut Shard<PipeLink>) {
    let na = a.net();
    let done = Rc::new(RefCell::new(false));
    let d2 = done.clone();
    na.spawn({
        let na = na.clone();
        async move {
            let mut s = TcpStream::connect(&na, (ip(B4), 7)).await.unwrap();
            s.write_all(b"still here").await.unwrap();
            let mut buf = [0u8; 10];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"still here");
            *d2.borrow_mut() = true;
        }
    });
    drive(a, b, Duration::from_secs(5), || *done.borrow());
}

/// Files through the shard's io_uring: concurrent writes, fsync, reads back byte-exact,
/// and a read past the end comes back short.
#[test]
fn disk_io_through_the_shards_ring() {
    let (mut a, mut b) = pair();
    let na = a.net();
    let path = std::env::temp_dir().join(format!("sixstack-disk-{}", std::process::id()));
    let file = std::sync::Arc::new(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap(),
    );
    let out = Rc::new(RefCell::new(None));
    let o2 = out.clone();
    na.spawn({
        let na = na.clone();
        async move {
            let r: std::io::Result<bool> = async {
                let data = pattern(1 << 20);
                let chunks: Vec<_> = (0..16u64)
                    .map(|i| {
                        let (na, file) = (na.clone(), file.clone());
                        let part = data[(i as usize) << 16..((i as usize) + 1) << 16].to_vec();
                        na.clone()
                            .spawn(async move { na.write_all_at(&file, i << 16, &part).await })
                    })
                    .collect();
                for c in chunks {
                    c.await?;
                }
                na.fsync(&file).await?;
                let back = na.read_at(&file, 0, 1 << 20).await?;
                let tail = na.read_at(&file, (1 << 20) - 10, 100).await?;
                Ok(back == data && tail.len() == 10)
            }
            .await;
            *o2.borrow_mut() = Some(r.map_err(|e| e.to_string()));
        }
    });
    drive(&mut a, &mut b, Duration::from_secs(600), || {
        out.borrow().is_some()
    });
    assert_eq!(out.borrow_mut().take(), Some(Ok(true)));
    let _ = std::fs::remove_file(path);
}

/// A SYN for B's port 80 from `src`:`sport`, as a spoofing flooder sends it.
fn spoofed_syn(src: [u8; 4], sport: u16, seq: u32) -> Vec<u8> {
    use sixstack_stack::smoltcp::phy::ChecksumCapabilities;
    use sixstack_stack::smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet,
        Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    };
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: 80,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: None,
        window_len: 64_240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    };
    let ipv4 = Ipv4Repr {
        src_addr: src.into(),
        dst_addr: B4.into(),
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([0x02, 0, 0, 0, 0, 0x99]),
        dst_addr: EthernetAddress([0x02, 0, 0, 0, 0, 2]),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; 14 + ipv4.buffer_len() + tcp.buffer_len()];
    let caps = ChecksumCapabilities::default();
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    ipv4.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]), &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut buf[34..]),
        &ip(src),
        &ip(B4),
        &caps,
    );
    buf
}

#[test]
fn a_spoofed_syn_flood_does_not_lock_legitimate_clients_out() {
    let (mut a, mut b) = pair();
    let nb = b.net();
    let listener = TcpListener::bind_with_backlog(
        &nb,
        IpListenEndpoint {
            addr: None,
            port: 80,
        },
        16,
    )
    .unwrap();
    nb.spawn(async move {
        let mut keep = Vec::new();
        while let Ok(s) = listener.accept().await {
            keep.push(s);
        }
    });
    let na = a.net();
    let results = Rc::new(RefCell::new(Vec::new()));
    let mut seq = 7u32;
    for round in 0..40u16 {
        // 100 SYNs from addresses that never answer the SYN-ACK (the backlog holds 16).
        for i in 0..100u16 {
            seq = seq.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let src = [10, 0, 0, 100 + (i % 150) as u8];
            assert!(b
                .link()
                .inject(&spoofed_syn(src, 1024 + round * 100 + i, seq)));
        }
        let (na2, res) = (na.clone(), results.clone());
        na.spawn(async move {
            let r = TcpStream::connect(&na2, (ip(B4), 80)).await;
            res.borrow_mut().push(r.is_ok());
            na2.sleep(Duration::from_secs(60)).await;
        });
        let want = usize::from(round) + 1;
        drive(&mut a, &mut b, Duration::from_secs(30), || {
            results.borrow().len() == want
        });
    }
    let ok = results.borrow().iter().filter(|&&r| r).count();
    assert_eq!(
        ok,
        40,
        "legitimate connects during the flood: {:?}",
        results.borrow()
    );
    let evicted = b.stats().steer.syn_evicted;
    assert!(
        evicted >= 40 * 100 - 16 * 2,
        "half-open handshakes evicted: {evicted}"
    );
}

/// Connects once from `a` to B's port 80, driving both shards until it is decided; the
/// stream (if any) is kept open in `keep`.
fn connect_once(
    a: &mut Shard<PipeLink>,
    b: &mut Shard<PipeLink>,
    keep: &Rc<RefCell<Vec<TcpStream>>>,
) -> Result<(), std::io::ErrorKind> {
    let na = a.net();
    let out = Rc::new(RefCell::new(None));
    let (na2, o, k) = (na.clone(), out.clone(), keep.clone());
    na.spawn(async move {
        let r = TcpStream::connect(&na2, (ip(B4), 80)).await;
        *o.borrow_mut() = Some(r.map(|s| k.borrow_mut().push(s)).map_err(|e| e.kind()));
    });
    drive(a, b, Duration::from_secs(30), || out.borrow().is_some());
    let r = out.borrow_mut().take();
    r.unwrap_or(Err(std::io::ErrorKind::Other))
}

#[test]
fn a_spent_socket_memory_budget_refuses_new_connections_cleanly() {
    let per_socket = 128 * 1024; // the default 64 KiB receive + 64 KiB send
    let (la, lb) = pipe::pair(1024, 1500);
    let mut cb = cfg(2);
    cb.socket_memory = 6 * per_socket;
    let (mut a, mut b) = (Shard::new(la, cfg(1)).unwrap(), Shard::new(lb, cb).unwrap());
    let nb = b.net();
    let listener = TcpListener::bind(
        &nb,
        IpListenEndpoint {
            addr: None,
            port: 80,
        },
    )
    .unwrap();
    let accepted = Rc::new(RefCell::new(Vec::new()));
    let k = accepted.clone();
    nb.spawn(async move {
        while let Ok(s) = listener.accept().await {
            k.borrow_mut().push(s);
        }
    });
    // B's budget holds six sockets (the armed listening socket becomes the sixth
    // connection): then the listener is not re-armed and SYNs are refused with a reset.
    let clients = Rc::new(RefCell::new(Vec::new()));
    let results: Vec<_> = (0..10)
        .map(|_| connect_once(&mut a, &mut b, &clients))
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 6, "{results:?}");
    assert!(
        results[6..]
            .iter()
            .all(|r| *r == Err(std::io::ErrorKind::ConnectionRefused)),
        "{results:?}"
    );
    assert!(b.stats().net.socket_memory_refused > 0);
    // Both sides close everything: once the sockets are gone, B takes connections again.
    accepted.borrow_mut().clear();
    clients.borrow_mut().clear();
    let mut again = Err(std::io::ErrorKind::Other);
    for _ in 0..60 {
        again = connect_once(&mut a, &mut b, &clients);
        if again.is_ok() {
            break;
        }
        // Let the closing handshakes and reaping run a while.
        let rounds = std::cell::Cell::new(0u32);
        drive(&mut a, &mut b, Duration::from_secs(30), || {
            rounds.set(rounds.get() + 1);
            rounds.get() > 20_000
        });
    }
    assert_eq!(
        again,
        Ok(()),
        "B never took connections again: {:?}, {} sockets",
        b.stats().net,
        b.net().socket_count()
    );

    // The same budget on the connecting side: a connect beyond it fails at once, locally.
    let (la, lb) = pipe::pair(1024, 1500);
    let mut ca = cfg(1);
    ca.socket_memory = per_socket;
    let (mut a, mut b) = (Shard::new(la, ca).unwrap(), Shard::new(lb, cfg(2)).unwrap());
    let nb = b.net();
    let listener = TcpListener::bind(
        &nb,
        IpListenEndpoint {
            addr: None,
            port: 80,
        },
    )
    .unwrap();
    nb.spawn(async move {
        let mut keep = Vec::new();
        while let Ok(s) = listener.accept().await {
            keep.push(s);
        }
    });
    let clients = Rc::new(RefCell::new(Vec::new()));
    assert_eq!(connect_once(&mut a, &mut b, &clients), Ok(()));
    assert_eq!(
        connect_once(&mut a, &mut b, &clients),
        Err(std::io::ErrorKind::OutOfMemory)
    );
    assert_eq!(a.stats().net.socket_memory_refused, 1);
}

#[test]
fn a_source_over_its_connection_limit_is_refused_and_others_are_not() {
    let (la, lb) = pipe::pair(1024, 1500);
    let mut cb = cfg(2);
    cb.max_per_source = 3;
    let (mut a, mut b) = (Shard::new(la, cfg(1)).unwrap(), Shard::new(lb, cb).unwrap());
    let nb = b.net();
    let listener = TcpListener::bind(
        &nb,
        IpListenEndpoint {
            addr: None,
            port: 80,
        },
    )
    .unwrap();
    // The server holds each connection until its client closes it.
    let nb2 = nb.clone();
    nb.spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            nb2.spawn(async move {
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let clients = Rc::new(RefCell::new(Vec::new()));
    let results: Vec<_> = (0..5)
        .map(|_| connect_once(&mut a, &mut b, &clients))
        .collect();
    assert_eq!(
        results,
        [
            Ok(()),
            Ok(()),
            Ok(()),
            Err(std::io::ErrorKind::ConnectionRefused),
            Err(std::io::ErrorKind::ConnectionRefused)
        ]
    );
    assert_eq!(b.stats().net.per_source_refused, 2);

    // Another source is not held to A's count: its SYNs are taken (its handshakes then
    // count against it: the fourth is refused).
    for (i, seq) in [11u32, 22, 33, 44].into_iter().enumerate() {
        assert!(b
            .link()
            .inject(&spoofed_syn([10, 0, 0, 50], 2000 + i as u16, seq)));
    }
    let_run(&mut a, &mut b, 2_000);
    assert_eq!(b.stats().net.per_source_refused, 3);

    // A closes one connection: once the server has closed its side, A may connect again.
    drop(clients.borrow_mut().remove(0));
    let mut again = Err(std::io::ErrorKind::Other);
    for _ in 0..20 {
        again = connect_once(&mut a, &mut b, &clients);
        if again.is_ok() {
            break;
        }
        let_run(&mut a, &mut b, 10_000);
    }
    assert_eq!(again, Ok(()), "{:?}", b.stats().net);
}

/// Lets both shards run `rounds` polls of virtual time with nothing to wait for.
fn let_run(a: &mut Shard<PipeLink>, b: &mut Shard<PipeLink>, rounds: u32) {
    let n = std::cell::Cell::new(0u32);
    drive(a, b, Duration::from_secs(30), || {
        n.set(n.get() + 1);
        n.get() > rounds
    });
}
