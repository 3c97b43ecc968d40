//! TLS workloads over kernel sockets with rustls (the same provider and policy as the
//! appliance): **handshakes** (a new connection per handshake, full or resumed with the
//! previous connection's TLS 1.3 ticket) and **bulk** (64 KiB application writes into a
//! TLS discard server). Run against sixstack's `tls-discard` and `openssl s_server`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sixstack_tls::rustls::client::Resumption;
use sixstack_tls::rustls::pki_types::ServerName;
use sixstack_tls::rustls::{ClientConfig, ClientConnection, HandshakeKind};

use crate::stats::{new_histogram, Errors, Report};

fn config(ca: &Path, resume: bool, tls12: bool) -> Result<Arc<ClientConfig>, String> {
    let mut cfg = if tls12 {
        let roots = sixstack_tls::material::load_roots(ca).map_err(|e| e.to_string())?;
        ClientConfig::builder_with_provider(sixstack_tls::provider::provider())
            .with_protocol_versions(&[&sixstack_tls::rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth()
    } else {
        let settings = sixstack_tls::client::ClientSettings {
            ca: Some(ca.to_path_buf()),
            ..Default::default()
        };
        let cfg = sixstack_tls::client::client_config(&settings).map_err(|e| e.to_string())?;
        (*cfg).clone()
    };
    if !resume {
        cfg.resumption = Resumption::disabled();
    }
    Ok(Arc::new(cfg))
}

fn durations(secs: f64, warmup: f64) -> Result<(Duration, Duration), String> {
    Ok((
        Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid secs {secs}"))?,
        Duration::try_from_secs_f64(warmup).map_err(|_| format!("invalid warmup {warmup}"))?,
    ))
}

/// One connection and handshake; for resumption, waits (briefly) for the server's TLS 1.3
/// tickets so the next connection can resume. Returns whether this one was resumed.
fn handshake_once(
    target: SocketAddr,
    name: &ServerName<'static>,
    cfg: &Arc<ClientConfig>,
    want_ticket: bool,
) -> std::io::Result<bool> {
    let mut sock = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
    sock.set_nodelay(true)?;
    // No TIME-WAIT left behind (see `run_crr`): the rate must not fall as ports run out.
    crate::sys::set_linger_zero(std::os::fd::AsRawFd::as_raw_fd(&sock))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut conn = ClientConnection::new(cfg.clone(), name.clone())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    // TLS 1.3 tickets come after the handshake; TLS 1.2 sessions are known at its end.
    let tls13 = conn.protocol_version() == Some(sixstack_tls::rustls::ProtocolVersion::TLSv1_3);
    if want_ticket && tls13 {
        sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let end = Instant::now() + Duration::from_millis(200);
        while conn.tls13_tickets_received() == 0 && Instant::now() < end {
            match conn.read_tls(&mut sock) {
                Ok(0) => break,
                Ok(_) => {
                    conn.process_new_packets()
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                }
                Err(_) => break,
            }
        }
    }
    conn.send_close_notify();
    let _ = conn.write_tls(&mut sock);
    Ok(resumed)
}

/// New connections with a TLS handshake each (TLS 1.3, or 1.2 with `tls12`), for `secs`
/// after `warmup`; with `resume`, every connection offers the session of the one before
/// (a run where most do not resume is an error).
pub fn run_tls_handshakes(
    target: SocketAddr,
    ca: &Path,
    resume: bool,
    tls12: bool,
    secs: f64,
    warmup: f64,
) -> Result<Report, String> {
    let (secs_d, warm_d) = durations(secs, warmup)?;
    let cfg = config(ca, resume, tls12)?;
    let name = ServerName::from(target.ip());
    let mut hist = new_histogram();
    let mut errors = Errors::default();
    let start = Instant::now();
    let measure_from = start + warm_d;
    let end = measure_from + secs_d;
    let (mut transactions, mut resumed, mut full) = (0u64, 0u64, 0u64);
    while Instant::now() < end {
        let t = Instant::now();
        match handshake_once(target, &name, &cfg, resume) {
            Ok(r) => {
                if t >= measure_from {
                    transactions += 1;
                    if r {
                        resumed += 1;
                    } else {
                        full += 1;
                    }
                    let _ = hist.record((t.elapsed().as_nanos() as u64).max(1));
                }
            }
            Err(e) => {
                errors.push(format!("tls handshake: {e}"));
                if errors.count > 100 {
                    break;
                }
            }
        }
    }
    if resume && transactions > 0 && resumed * 2 < transactions {
        errors.push(format!(
            "only {resumed} of {transactions} handshakes were resumed ({full} full)"
        ));
    }
    if !resume && resumed > 0 {
        errors.push(format!("{resumed} handshakes resumed with resumption off"));
    }
    Ok(Report {
        mode: if resume {
            "tls_handshake_resumed"
        } else {
            "tls_handshake_full"
        },
        target,
        conns: 1,
        connected: usize::from(transactions > 0),
        threads: 1,
        size: 0,
        secs,
        transactions,
        losses: 0,
        errors,
        hist,
    })
}

/// One TLS connection writing 64 KiB application blocks for `secs` after `warmup`.
pub fn run_tls_bulk(
    target: SocketAddr,
    ca: &Path,
    secs: f64,
    warmup: f64,
) -> Result<Report, String> {
    let (secs_d, warm_d) = durations(secs, warmup)?;
    let cfg = config(ca, false, false)?;
    let name = ServerName::from(target.ip());
    let mut errors = Errors::default();
    let mut hist = new_histogram();
    let mut transactions = 0u64;
    let sock = TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .map_err(|e| format!("{target}: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let mut tls = sixstack_tls::rustls::StreamOwned::new(conn, sock);
    let block = vec![0x42u8; 64 * 1024];
    let start = Instant::now();
    let measure_from = start + warm_d;
    let end = measure_from + secs_d;
    while Instant::now() < end {
        let t = Instant::now();
        if let Err(e) = tls.write_all(&block).and_then(|()| tls.flush()) {
            errors.push(format!("tls write: {e}"));
            break;
        }
        if t >= measure_from {
            transactions += 1;
            let _ = hist.record((t.elapsed().as_nanos() as u64).max(1));
        }
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let mut sink = [0u8; 64];
    let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = tls.sock.read(&mut sink);
    Ok(Report {
        mode: "tls_bulk",
        target,
        conns: 1,
        connected: 1,
        threads: 1,
        size: block.len(),
        secs,
        transactions,
        losses: 0,
        errors,
        hist,
    })
}
