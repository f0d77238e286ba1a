//! What a request may carry. Every limit is checked before the work it
//! guards: the body while it streams in, an image's pixels from its header.

/// Limits on uploads and queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes (413 past it, while streaming).
    pub max_body_bytes: usize,
    /// The most image files one request may upload.
    pub max_files: usize,
    /// The most multipart fields (files and text) one request may carry.
    pub max_fields: usize,
    /// The most pixels an uploaded image may declare (decompression bombs).
    pub max_pixels: u64,
    /// The most neighbours a search may ask for.
    pub max_k: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 16 << 20,
            max_files: 32,
            max_fields: 40,
            max_pixels: 40_000_000,
            max_k: 100,
        }
    }
}

/// Bytes a text field may hold: `k` and flags are a few characters.
pub const MAX_TEXT_BYTES: usize = 256;

/// Images one forward pass of the worker embeds at most; requests queued
/// together are batched up to this.
pub const MAX_BATCH_IMAGES: usize = 256;
