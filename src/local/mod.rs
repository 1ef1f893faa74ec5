//! The local side that both engines share: file data I/O off the runtime,
//! the `-l` pacer, walking source trees and writing received files.

pub(crate) mod blocking;
mod limit;
pub mod receive;
pub mod walk;

pub(crate) use limit::Pacer;
pub use limit::bytes_per_second;

/// Size of the buffers file data moves in.
pub const CHUNK: usize = 256 * 1024;
