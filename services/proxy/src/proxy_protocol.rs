//! The PROXY protocol header (HAProxy's specification, versions 1 and 2) a listener can send
//! to a backend before the client's bytes, so the backend learns the client's address (and,
//! in version 2, what TLS the client spoke and the common name of its certificate).

use std::net::SocketAddr;

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
}
