//! What a request may carry, and how long a client may take to send it.
//! Every limit is checked before the work it guards: the head as it is
//! parsed, the body's declared size before any of it is read and its actual
//! size while it streams in, an image's pixels from its header.

use std::time::Duration;

/// Limits on connections, uploads and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes: 413 at once when Content-Length
    /// announces more, and while streaming past it otherwise.
    pub max_body_bytes: usize,
    /// The most image files one request may upload.
    pub max_files: usize,
    /// The most multipart fields (files and text) one request may carry.
    pub max_fields: usize,
    /// The most pixels an uploaded image may declare (decompression bombs).
    pub max_pixels: u64,
    /// The most neighbours a search may ask for.
    pub max_k: usize,
    /// The longest request target (path and query), in bytes: 414 past it.
    pub max_uri_bytes: usize,
    /// The largest request head (request line and headers), in bytes: 431
    /// past it, as past [`MAX_HEADERS`] headers.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request's line and headers,
    /// counted from when the server waits for them (a new connection, or a
    /// kept-alive one after its last answer). Past it the connection is
    /// closed: slow or idle clients cannot hold connections open.
    pub header_timeout: Duration,
    /// How long a client may take to send a whole request body, counted
    /// from its headers: 408 past it.
    pub body_timeout: Duration,
    /// The most connections served at once; more wait in the operating
    /// system's listen queue until one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 16 << 20,
            max_files: 32,
            max_fields: 40,
            max_pixels: 40_000_000,
            max_k: 100,
            max_uri_bytes: 8 << 10,
            max_header_bytes: 32 << 10,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

/// The most headers a request may carry (hyper's default, kept: a request
/// of this API needs a handful).
pub const MAX_HEADERS: usize = 100;

/// Bytes a text field may hold: `k` and flags are a few characters.
pub const MAX_TEXT_BYTES: usize = 256;

/// Images one forward pass of the worker embeds at most; requests queued
/// together are batched up to this.
pub const MAX_BATCH_IMAGES: usize = 256;
