//! rscp's own SSH client, on russh.

pub mod algorithms;
mod auth;
pub mod channel;
pub mod connection;
mod greeting;
pub mod host_key;
pub mod known_hosts;
pub mod log;
mod native;
pub mod prompt;
mod proxy;
mod watchdog;

pub use native::{Lane, NativeTransport};
