//! rscp: a drop-in replacement for OpenSSH's `scp`.
//!
//! Layering (see DESIGN.md): `cli` and `operand` read the command line,
//! `plan` turns operands into steps, `client` and `server` carry them out
//! over a `transport`, with the `scp` engine at both ends (`engine`, `events`: what engines share).

pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod escape;
pub mod events;
#[doc(hidden)]
pub mod fuzz;
pub mod local;
pub mod manual;
pub mod operand;
pub mod plan;
pub mod progress;
pub mod report;
pub mod scp;
pub mod server;
pub mod sftp;
pub mod spread;
pub mod transport;
