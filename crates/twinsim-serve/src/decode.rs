//! Uploaded bytes to model input: formats outside the allow-list are
//! refused from their content (whatever the file is called), then images
//! are decoded within the pixel limit and converted as in training.

use image::ImageFormat;
use twinsim_data::folder::{self, FolderOptions, SkipReason};
use twinsim_data::Images;
use twinsim_learn::model::Preprocess;

use crate::error::ApiError;
use crate::upload::File;

/// The formats the server decodes; everything else (TIFF, SVG, EPS, ...)
/// is refused with 415, however it is named.
pub const FORMATS: &[ImageFormat] = &[
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::WebP,
    ImageFormat::Bmp,
    ImageFormat::Gif,
];

/// `files` decoded and converted for a model with `preprocess`, in order,
/// as one (N, C, H, W) buffer; the first file that cannot be used is the
/// error. CPU work: call it off the async executor.
pub fn images(files: &[File], preprocess: &Preprocess, max_pixels: u64) -> Result<Images, ApiError> {
    let opts = FolderOptions {
        max_pixels,
        ..twinsim_learn::images::conversion(preprocess)
    };
    let mut pixels = Vec::with_capacity(files.len() * opts.shape().len());
    for f in files {
        check_format(f)?;
        pixels.extend(folder::decode_bytes(&f.bytes, &opts).map_err(|r| refused(f, r))?);
    }
    Images::new(pixels, opts.shape()).map_err(|e| ApiError::internal(e.to_string()))
}

fn check_format(f: &File) -> Result<(), ApiError> {
    if f.bytes.is_empty() {
        return Err(ApiError::bad_request(
            format!("file '{}' is empty", f.name),
            "send the image's bytes (curl -F a=@image.png)",
        ));
    }
    match image::guess_format(&f.bytes) {
        Ok(format) if FORMATS.contains(&format) => Ok(()),
        Ok(format) => Err(ApiError::unsupported(
            format!("file '{}' is {format:?}, which this server does not take", f.name),
            accepted(),
        )),
        Err(_) => Err(ApiError::unsupported(
            format!("file '{}' is not an image in a known format", f.name),
            accepted(),
        )),
    }
}

fn accepted() -> String {
    let names: Vec<String> = FORMATS.iter().map(|f| format!("{f:?}").to_uppercase()).collect();
    format!("send {}", names.join(", "))
}

/// The refusal for a file the decoder turned down.
fn refused(f: &File, reason: SkipReason) -> ApiError {
    match reason {
        SkipReason::TooLarge(why) => ApiError::too_large(
            format!("image '{}' is too large: {why}", f.name),
            format!(
                "resize it before sending: at most {} pixels a side, and the server's --max-pixels in all",
                folder::MAX_SIDE
            ),
        ),
        other => ApiError::unprocessable(
            format!("image '{}' cannot be decoded: {other}", f.name),
            "send a complete, undamaged image file",
        ),
    }
}
