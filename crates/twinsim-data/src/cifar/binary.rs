//! CIFAR's binary download: fixed-size records (label bytes, then the image
//! as R, G, B planes of 32x32) and class names as text, one per line.

use super::{ClassNames, Labelled, Named, IMAGE_BYTES};
use crate::error::{DataError, Result};

/// Appends the records of one batch file to `out`; CIFAR-100 records
/// (`coarse`) carry a coarse label byte before the fine one.
pub(super) fn append_batch(out: &mut Labelled, file: &Named, coarse: bool) -> Result<()> {
    let record = IMAGE_BYTES + 1 + usize::from(coarse);
    if file.bytes.is_empty() || file.bytes.len() % record != 0 {
        return Err(DataError::corrupt(
            &file.path,
            format!(
                "{} bytes is not a whole, non-zero number of {record}-byte records",
                file.bytes.len()
            ),
        ));
    }
    let count = file.bytes.len() / record;
    out.pixels.reserve(count * IMAGE_BYTES);
    out.fine.reserve(count);
    for rec in file.bytes.chunks_exact(record) {
        let (labels, image) = rec.split_at(record - IMAGE_BYTES);
        out.fine.push(u32::from(labels[labels.len() - 1]));
        if let Some(c) = &mut out.coarse {
            c.push(u32::from(labels[0]));
        }
        out.pixels.extend_from_slice(image);
    }
    Ok(())
}

/// Class names from `batches.meta.txt` (CIFAR-10) or from
/// `fine_label_names.txt` then `coarse_label_names.txt` (CIFAR-100).
pub(super) fn class_names(meta: &[Named]) -> Result<ClassNames> {
    let mut lists = meta.iter().map(lines);
    let fine = lists.next().transpose()?.unwrap_or_default();
    let coarse = lists.next().transpose()?;
    Ok(ClassNames { fine, coarse })
}

/// The non-blank lines of a text file, trimmed: the official files end with
/// blank lines and may use CRLF.
fn lines(file: &Named) -> Result<Vec<String>> {
    let text = std::str::from_utf8(&file.bytes)
        .map_err(|_| DataError::corrupt(&file.path, "class names are not UTF-8 text"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}
