//! `sixstack cert`: lab certificates, and what a certificate file or a live server says.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use sixstack_tls::material::load_certs;
use sixstack_tls::rustls::pki_types::ServerName;
use sixstack_tls::rustls::ClientConnection;
use sixstack_tls::CertInfo;

/// The names the lab server certificate covers: localhost and every lab address.
pub fn lab_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "sixstack.lab".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for lab in [
        crate::lab::Lab::default_veth(),
        crate::lab::Lab::default_tap(),
        crate::lab::Lab::jumbo(),
    ] {
        names.push(lab.stack4().to_string());
        names.push(lab.stack6().to_string());
    }
    names
}

/// Writes a lab CA, server and client certificate into `dir`; returns a summary.
pub fn selfsigned(dir: &Path, names: &[String], client_cn: &str) -> Result<String, String> {
    let f = sixstack_tls::selfsigned::create(dir, names, client_cn).map_err(|e| e.to_string())?;
    Ok(format!(
        "CA:      {}\nserver:  {} (key {})\nclient:  {} (key {}, user {client_cn})\nserver names: {}",
        f.ca.display(),
        f.server_cert.display(),
        f.server_key.display(),
        f.client_cert.display(),
        f.client_key.display(),
        names.join(", ")
    ))
}

/// Every certificate of a PEM file, described.
pub fn info_file(path: &Path) -> Result<String, String> {
    let certs = load_certs(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, c) in certs.iter().enumerate() {
        let info = CertInfo::from_der(c)
            .map_err(|e| format!("{}: certificate {i}: {e}", path.display()))?;
        out.push(format!("certificate {i}:\n{info}"));
    }
    Ok(out.join("\n\n"))
}

/// Connects to a live TLS server (over kernel sockets, in `netns` if given) and describes
/// the chain it sends and the session it agreed. The chain is shown, not trusted.
pub fn info_connect(
    target: &str,
    sni: Option<&str>,
    netns: Option<&str>,
) -> Result<String, String> {
    let host = target
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(target)
        .to_string();
    let target = target.to_string();
    let sni = sni.map(str::to_string).unwrap_or(host);
    let work = move || -> Result<String, String> {
        let addr: SocketAddr = target
            .to_socket_addrs()
            .map_err(|e| format!("{target}: {e}"))?
            .next()
            .ok_or_else(|| format!("{target}: no address"))?;
        let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("{addr}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(sni.clone()).map_err(|e| format!("{sni}: {e}"))?;
        let cfg = sixstack_tls::client::inspect_config().map_err(|e| e.to_string())?;
        let mut conn = ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| format!("handshake with {addr}: {e}"))?;
        }
        let mut out = vec![format!(
            "{addr}: {} {}",
            match conn.protocol_version() {
                Some(sixstack_tls::rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
                Some(sixstack_tls::rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
                v => format!("{v:?}"),
            },
            conn.negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("-")
        )];
        for (i, c) in conn.peer_certificates().unwrap_or(&[]).iter().enumerate() {
            let info = CertInfo::from_der(c).map_err(|e| e.to_string())?;
            out.push(format!("certificate {i}:\n{info}"));
        }
        conn.send_close_notify();
        let _ = conn.write_tls(&mut sock);
        let _ = sock.flush();
        let mut sink = [0u8; 256];
        let _ = sock.read(&mut sink);
        Ok(out.join("\n\n"))
    };
    match netns {
        Some(ns) => {
            sixstack_drivers::netdev::in_netns(ns, work).map_err(|e| format!("{ns}: {e}"))?
        }
        None => work(),
    }
}
