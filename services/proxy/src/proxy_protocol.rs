//! The PROXY protocol header (HAProxy's specification, versions 1 and 2) a listener can send
//! to a backend before the client's bytes, so the backend learns the client's address (and,
//! in version 2, what TLS the client spoke and the common name of its certificate); and
//! [`parse_v2`], the reading side, for services that sit behind such a listener.

use std::net::{IpAddr, SocketAddr};

/// Which version of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text header: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header, with TLVs.
    V2,
}

/// What the listener knows of the client's TLS session (TLS-terminating listeners).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFacts {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The verified client certificate's common name, if the client sent one.
    pub client_cn: Option<String>,
}

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// `PP2_TYPE_SSL` and its sub-types.
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
const PP2_CLIENT_SSL: u8 = 0x01;
const PP2_CLIENT_CERT_CONN: u8 = 0x02;

fn tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(value.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&value[..value.len().min(u16::MAX as usize)]);
}

/// The header for a connection from `src` (the client) to `dst` (the listener).
pub fn header(v: Version, src: SocketAddr, dst: SocketAddr, tls: Option<&TlsFacts>) -> Vec<u8> {
    match v {
        Version::V1 => match (src, dst) {
            (SocketAddr::V4(s), SocketAddr::V4(d)) => format!(
                "PROXY TCP4 {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            )
            .into_bytes(),
            (SocketAddr::V6(s), SocketAddr::V6(d)) => format!(
                "PROXY TCP6 {} {} {} {}\r\n",
                s.ip(),
                d.ip(),
                s.port(),
                d.port()
            )
            .into_bytes(),
            _ => b"PROXY UNKNOWN\r\n".to_vec(),
        },
        Version::V2 => {
            let mut body = Vec::new();
            let fam = match (src, dst) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                    body.extend_from_slice(&s.ip().octets());
                    body.extend_from_slice(&d.ip().octets());
                    body.extend_from_slice(&s.port().to_be_bytes());
                    body.extend_from_slice(&d.port().to_be_bytes());
                    0x11
                }
                (SocketAddr::V6(s), SocketAddr::V6(d)) => {
                    body.extend_from_slice(&s.ip().octets());
                    body.extend_from_slice(&d.ip().octets());
                    body.extend_from_slice(&s.port().to_be_bytes());
                    body.extend_from_slice(&d.port().to_be_bytes());
                    0x21
                }
                _ => 0x00,
            };
            if let Some(t) = tls {
                let mut ssl = Vec::new();
                let cert = t.client_cn.is_some();
                ssl.push(PP2_CLIENT_SSL | if cert { PP2_CLIENT_CERT_CONN } else { 0 });
                // verify: 0 = the client certificate was verified (or none was sent).
                ssl.extend_from_slice(&0u32.to_be_bytes());
                tlv(&mut ssl, PP2_SUBTYPE_SSL_VERSION, t.version.as_bytes());
                if let Some(cn) = &t.client_cn {
                    tlv(&mut ssl, PP2_SUBTYPE_SSL_CN, cn.as_bytes());
                }
                tlv(&mut body, PP2_TYPE_SSL, &ssl);
            }
            let mut out = Vec::with_capacity(16 + body.len());
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(0x21); // version 2, command PROXY
            out.push(fam);
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(&body);
            out
        }
    }
}

/// A version 2 header as read by a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    /// The client and the address it connected to; `None` for a `LOCAL` header (the proxy
    /// speaking for itself, as in a health check) or an unspecified family.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// The client's TLS session at the proxy, when it spoke TLS there.
    pub tls: Option<TlsFacts>,
}

/// Why a version 2 header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The bytes do not start with the version 2 signature.
    #[error("not a PROXY protocol version 2 header")]
    NotV2,
    /// The version nibble is not 2.
    #[error("PROXY protocol version {0} is not supported")]
    Version(u8),
    /// The command is neither LOCAL nor PROXY.
    #[error("unknown PROXY protocol command {0}")]
    Command(u8),
    /// A family or transport other than TCP over IPv4 or IPv6.
    #[error("PROXY protocol family 0x{0:02x} is not TCP over IPv4 or IPv6")]
    Family(u8),
    /// The address block or a TLV runs past the header's length.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
}

/// Reads a version 2 header at the start of `buf`: `Ok(None)` while more bytes are
/// needed, else the header and its length in bytes (what follows is the client's).
pub fn parse_v2(buf: &[u8]) -> Result<Option<(Proxied, usize)>, HeaderError> {
    let sig = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig] != V2_SIGNATURE[..sig] {
        return Err(HeaderError::NotV2);
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Err(HeaderError::Version(version));
    }
    if command > 1 {
        return Err(HeaderError::Command(command));
    }
    let family = buf[13];
    let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    let (addresses, rest) = match family {
        0x00 => (None, &body[..0]),
        0x11 => {
            let a = body
                .get(..12)
                .ok_or(HeaderError::Malformed("short IPv4 addresses"))?;
            let ip = |o: usize| IpAddr::from([a[o], a[o + 1], a[o + 2], a[o + 3]]);
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let pair = (
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            );
            (Some(pair), &body[12..])
        }
        0x21 => {
            let a = body
                .get(..36)
                .ok_or(HeaderError::Malformed("short IPv6 addresses"))?;
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&a[o..o + 16]);
                IpAddr::from(b)
            };
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let pair = (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            );
            (Some(pair), &body[36..])
        }
        f => return Err(HeaderError::Family(f)),
    };
    let mut tls = None;
    for (kind, value) in tlvs(rest)? {
        if kind != PP2_TYPE_SSL {
            continue;
        }
        let (&client, more) = value
            .split_first()
            .ok_or(HeaderError::Malformed("empty SSL TLV"))?;
        let verify = more
            .get(..4)
            .ok_or(HeaderError::Malformed("short SSL TLV"))?;
        if client & PP2_CLIENT_SSL == 0 {
            continue;
        }
        let verified = verify == [0, 0, 0, 0] && client & PP2_CLIENT_CERT_CONN != 0;
        let mut facts = TlsFacts {
            version: String::new(),
            client_cn: None,
        };
        for (sub, v) in tlvs(&more[4..])? {
            let text = String::from_utf8_lossy(v).into_owned();
            match sub {
                PP2_SUBTYPE_SSL_VERSION => facts.version = text,
                PP2_SUBTYPE_SSL_CN if verified => facts.client_cn = Some(text),
                _ => {}
            }
        }
        tls = Some(facts);
    }
    let addresses = if command == 0 { None } else { addresses };
    Ok(Some((Proxied { addresses, tls }, total)))
}

/// The type-length-value entries of `buf`.
fn tlvs(mut buf: &[u8]) -> Result<Vec<(u8, &[u8])>, HeaderError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let head = buf.get(..3).ok_or(HeaderError::Malformed("short TLV"))?;
        let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let value = buf
            .get(3..3 + len)
            .ok_or(HeaderError::Malformed("TLV past the header"))?;
        out.push((head[0], value));
        buf = &buf[3 + len..];
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_follow_the_specification() {
        let s: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let d: SocketAddr = "198.51.100.2:443".parse().unwrap();
        assert_eq!(
            header(Version::V1, s, d, None),
            b"PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n"
        );
        let s6: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let d6: SocketAddr = "[2001:db8::2]:443".parse().unwrap();
        assert_eq!(
            header(Version::V1, s6, d6, None),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 40000 443\r\n"
        );
        assert_eq!(header(Version::V1, s, d6, None), b"PROXY UNKNOWN\r\n");
        let h = header(Version::V2, s, d, None);
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!((h[12], h[13]), (0x21, 0x11));
        assert_eq!(u16::from_be_bytes([h[14], h[15]]), 12);
        assert_eq!(&h[16..20], &[192, 0, 2, 1]);
        assert_eq!(&h[24..26], &40000u16.to_be_bytes());
        let t = TlsFacts {
            version: "TLSv1.3".into(),
            client_cn: Some("alice".into()),
        };
        let h = header(Version::V2, s, d, Some(&t));
        let len = usize::from(u16::from_be_bytes([h[14], h[15]]));
        assert_eq!(h.len(), 16 + len);
        let tlvs = &h[16 + 12..];
        assert_eq!(tlvs[0], 0x20);
        assert_eq!(tlvs[3], 0x03, "client used TLS and sent a certificate");
        let text = String::from_utf8_lossy(tlvs);
        assert!(text.contains("TLSv1.3") && text.contains("alice"), "{text}");
    }

    #[test]
    fn v2_headers_read_back() {
        let s: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let d: SocketAddr = "198.51.100.2:990".parse().unwrap();
        let t = TlsFacts {
            version: "TLSv1.3".into(),
            client_cn: Some("alice".into()),
        };
        let mut h = header(Version::V2, s, d, Some(&t));
        let n = h.len();
        h.extend_from_slice(b"USER anna\r\n");
        // Byte by byte: more is needed until the whole header is there.
        for cut in 0..n {
            assert_eq!(parse_v2(&h[..cut]), Ok(None), "{cut}");
        }
        let (p, len) = parse_v2(&h).unwrap().unwrap();
        assert_eq!(len, n);
        assert_eq!(p.addresses, Some((s, d)));
        assert_eq!(p.tls, Some(t));
        let s6: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let d6: SocketAddr = "[2001:db8::2]:21".parse().unwrap();
        let (p, _) = parse_v2(&header(Version::V2, s6, d6, None))
            .unwrap()
            .unwrap();
        assert_eq!((p.addresses, p.tls), (Some((s6, d6)), None));
        // LOCAL carries no client.
        let mut local = header(Version::V2, s, d, None);
        local[12] = 0x20;
        assert_eq!(parse_v2(&local).unwrap().unwrap().0.addresses, None);
    }

    #[test]
    fn bad_v2_headers_are_refused() {
        let s: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let d: SocketAddr = "198.51.100.2:990".parse().unwrap();
        assert_eq!(parse_v2(b"USER anna\r\n"), Err(HeaderError::NotV2));
        assert_eq!(parse_v2(b"PROXY TCP4 1.2.3.4"), Err(HeaderError::NotV2));
        let good = header(Version::V2, s, d, None);
        let mut h = good.clone();
        h[12] = 0x11;
        assert_eq!(parse_v2(&h), Err(HeaderError::Version(1)));
        let mut h = good.clone();
        h[12] = 0x22;
        assert_eq!(parse_v2(&h), Err(HeaderError::Command(2)));
        let mut h = good.clone();
        h[13] = 0x12;
        assert_eq!(parse_v2(&h), Err(HeaderError::Family(0x12)));
        // A length too short for the addresses, and a TLV that runs past the header.
        let mut h = good.clone();
        h[15] = 4;
        h.truncate(20);
        assert!(matches!(parse_v2(&h), Err(HeaderError::Malformed(_))));
        let mut h = good.clone();
        h[15] += 3;
        h.extend_from_slice(&[0x20, 0x00, 0x09]);
        assert!(matches!(parse_v2(&h), Err(HeaderError::Malformed(_))));
        // An unverified certificate's name is not passed on.
        let t = TlsFacts {
            version: "TLSv1.2".into(),
            client_cn: Some("mallory".into()),
        };
        let mut h = header(Version::V2, s, d, Some(&t));
        h[16 + 12 + 3 + 4] = 1;
        let (p, _) = parse_v2(&h).unwrap().unwrap();
        assert_eq!(p.tls.unwrap().client_cn, None);
    }
}
