//! The HTTP/2 windows of the gateway's server, sized so that a client that
//! streams small messages faster than the gateway takes them is held back by
//! flow control instead of being disconnected.
//!
//! h2 (0.4.16 and later) ends a connection with `ENHANCE_YOUR_CALM
//! too_many_data_frames` when it holds too many small DATA frames the
//! application has not read yet: each unread frame of `p < 256` bytes spends
//! `256 - p` of a per-connection budget of half the connection window. grpcio
//! and grpc-js send every message as its own frame, so while the gateway waits
//! (a broker that stalls, a full producer buffer) a stream of 20-byte messages
//! would spend that budget long before the stream's window is full. The
//! windows below make the stream window run out first: every stream may fill
//! its window with the smallest gRPC frames there are and the connection's
//! budget still covers all of them.

use tonic::transport::Server;

/// Unread bytes one stream may hold: the HTTP/2 default window.
pub const STREAM_WINDOW: u32 = 64 * 1024;

/// Streams one connection may have open at once.
pub const MAX_STREAMS: u32 = 128;

/// The smallest DATA frame a gRPC client sends for a message: the 5-byte
/// length prefix of an empty message.
const SMALLEST_FRAME: u32 = 5;

/// h2's size below which a DATA frame spends the budget.
const SMALL_FRAME: u32 = 256;

/// Twice (the budget is half the connection window) what every stream's window
/// full of the smallest frames spends. Actual unread data stays bounded by the
/// stream windows: `MAX_STREAMS * STREAM_WINDOW` (8 MiB).
pub const CONNECTION_WINDOW: u32 =
    2 * MAX_STREAMS * (STREAM_WINDOW / SMALLEST_FRAME) * (SMALL_FRAME - SMALLEST_FRAME);

// RFC 9113 §6.9.1: a flow-control window is at most 2^31 - 1; and the budget
// covers every stream's window whatever the size of its frames.
const _: () = assert!(CONNECTION_WINDOW < (1 << 31) - 1);
const _: () = assert!(CONNECTION_WINDOW / 2 >= MAX_STREAMS * STREAM_WINDOW);

/// `server` with the gateway's HTTP/2 windows and stream limit.
pub fn configure(server: Server) -> Server {
    server
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_STREAMS)
}
