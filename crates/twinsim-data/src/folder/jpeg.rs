//! Telling a complete JPEG from a truncated one. The JPEG decoder fills the
//! missing part of a cut-off scan with grey and reports success, so a
//! half-downloaded photo would enter a dataset unnoticed.

/// Start of scan: entropy-coded data follows its header.
const SOS: u8 = 0xDA;
/// End of image.
const EOI: u8 = 0xD9;

/// Whether `bytes` (a whole file starting with SOI) reach the end-of-image
/// marker by walking the marker segments and scans. Anything after the
/// marker (camera trailers, motion-photo videos) is allowed.
pub(super) fn is_complete(bytes: &[u8]) -> bool {
    let mut at = 2;
    loop {
        let Some(marker) = marker_at(bytes, &mut at) else {
            return false;
        };
        match marker {
            EOI => return true,
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(length) = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return false;
        };
        if length < 2 {
            return false;
        }
        at += length;
        if marker == SOS {
            match scan_end(bytes, at) {
                Some(end) => at = end,
                None => return false,
            }
        }
    }
}

/// The marker code at `at` (after any 0xFF fill bytes), advancing past it.
fn marker_at(bytes: &[u8], at: &mut usize) -> Option<u8> {
    if bytes.get(*at) != Some(&0xFF) {
        return None;
    }
    while bytes.get(*at) == Some(&0xFF) {
        *at += 1;
    }
    let code = *bytes.get(*at)?;
    *at += 1;
    Some(code)
}

/// Where the entropy-coded data starting at `at` ends: at the first 0xFF not
/// followed by a stuffed zero, a restart marker or more fill.
fn scan_end(bytes: &[u8], at: usize) -> Option<usize> {
    let data = bytes.get(at..)?;
    data.windows(2)
        .position(|w| w[0] == 0xFF && !matches!(w[1], 0x00 | 0xD0..=0xD7 | 0xFF))
        .map(|p| at + p)
}
