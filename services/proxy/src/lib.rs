//! sixstack's load-balanced proxy listeners: [`balance`] chooses a backend per connection
//! (round robin, weighted round robin, least connections, power of two choices, Maglev
//! consistent hashing); [`listener`] accepts on the stack, connects to the chosen backend
//! (trying the next one when a connect fails, ejecting a backend after repeated failures,
//! checking every backend actively) and [`splice`] joins the two streams with backpressure,
//! half-close both ways and an idle limit; [`board`] is where the shards publish per-backend
//! counters and where the operator drains and enables backends.

#![forbid(unsafe_code)]

pub mod balance;
pub mod board;
pub mod listener;
pub mod proxy_protocol;
pub mod splice;

pub use balance::{Algorithm, Backend, Balancer};
pub use board::{BackendReport, Board, BoardError, ListenerBoard, ProxyReport};
pub use listener::{serve, BackendConfig, BackendTls, HealthCheck, ProxyConfig};
