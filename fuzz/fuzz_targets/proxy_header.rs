//! The PROXY protocol version 2 reader the FTP server's proxied port runs on the first
//! bytes of a connection. Nothing may panic; a header it accepts fits in the input, and
//! every shorter prefix of it asks for more bytes or is refused, never read differently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sixstack_proxy::proxy_protocol::parse_v2;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((header, len))) = parse_v2(data) {
        assert!((16..=data.len()).contains(&len));
        assert_eq!(parse_v2(&data[..len]), Ok(Some((header, len))));
        assert_eq!(parse_v2(&data[..len - 1]), Ok(None));
    }
});
