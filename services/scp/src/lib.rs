//! Secure copy for the appliance. The appliance holds no SSH keys and does no SSH crypto:
//! it speaks a small framed protocol ([`wire`]) over mutual TLS to `sixstack scpd`, a
//! pass-through daemon on an ordinary Linux host, which runs the system's OpenSSH client
//! (public keys only, strict host-key checking) to the destination and relays the bytes
//! through memory. On the remote side the daemon speaks SFTP ([`sftp`]) or the legacy scp
//! protocol ([`legacy`]) over the SSH channel.

pub mod client;
pub mod daemon;
pub mod legacy;
pub mod sftp;
pub mod wire;
