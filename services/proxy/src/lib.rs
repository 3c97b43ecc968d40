//! sixstack's load-balanced proxy listeners: [`balance`] chooses a backend per connection
//! (round robin, weighted round robin, least connections, power of two choices, Maglev
//! consistent hashing); [`listener`] accepts on the stack, connects to the chosen backend
//! (trying the next one when a connect fails, ejecting a backend after repeated failures)
//! and splices the two streams with backpressure and half-close both ways.

#![forbid(unsafe_code)]

pub mod balance;
pub mod listener;
pub mod proxy_protocol;

pub use balance::{Algorithm, Backend, Balancer};
pub use listener::{serve, BackendConfig, HealthCheck, ProxyConfig};
