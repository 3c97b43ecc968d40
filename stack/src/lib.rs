//! sixstack's TCP/IP core: a [`Shard`] owns one smoltcp `Interface` (IPv4 and IPv6), one
//! driver link, a single-threaded async executor and the sockets applications use.
//!
//! Applications are ordinary async Rust over [`TcpListener`], [`TcpStream`] and
//! [`UdpSocket`]; the streams implement `tokio::io::AsyncRead`/`AsyncWrite` (tokio is used
//! for its traits only, never its runtime). Everything a shard owns is `!Send` and reached
//! through the [`Net`] handle, so nothing on the data path is shared between cores.
//! Time comes from the shard loop (`Net::now`), never from inside protocol code.
//!
//! This crate is not a driver (see `sixstack-drivers`) and holds no service logic.

#![forbid(unsafe_code)]

mod config;
mod disk;
mod executor;
mod flow;
mod hairpin;
mod icmp;
mod idle;
mod ingress;
mod lane;
mod listen;
mod mesh;
mod net;
mod offload;
mod oneframe;
mod pool;
mod shard;
mod sockets;
mod tcp;
mod timer;
mod udp;
pub mod workload;

pub use config::{AddressError, ReceiveQueueFn, StackConfig};
pub use executor::JoinHandle;
pub use flow::{classify, Class, FlowKey, Proto};
pub use icmp::PingReply;
pub use idle::IdleLimit;
pub use ingress::SteerCounters;
pub use mesh::{mesh, Handoff, MeshEnd};
pub use net::{Counter, Net, NetCounters, MAX_SERVICE_COUNTERS};
pub use offload::offload;
pub use shard::{Shard, ShardControl, ShardStats};
pub use tcp::{ListenOptions, TcpListener, TcpStream};
pub use timer::{timeout, Elapsed, Sleep};
pub use udp::UdpSocket;

pub use smoltcp;
pub use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv6Address};
