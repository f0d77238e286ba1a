//! CIFAR's python download: one pickled dict per batch (`data`, a uint8
//! array of shape (N, 3072), and `labels` or `fine_labels`/`coarse_labels`)
//! and a pickled dict of class names, read with the restricted [`pickle`]
//! reader.

use super::{ClassNames, Labelled, Named, IMAGE_BYTES};
use crate::error::{DataError, Result};
use crate::pickle::{self, Blob};

/// One batch's labels, with pixels still in the pickle's buffer.
struct Batch<'a> {
    pixels: Blob<'a>,
    fine: Vec<u32>,
    coarse: Option<Vec<u32>>,
}

/// Unpickles one batch file and appends it to `out`; `coarse` for
/// CIFAR-100, whose batches carry both labellings.
pub(super) fn append_batch(out: &mut Labelled, file: &Named, coarse: bool) -> Result<()> {
    let batch = read_batch(file, coarse)?;
    if out.pixels.is_empty() {
        // Moves the pixels when `_codecs.encode` made them; the split's only
        // batch (CIFAR-100, tests) then costs no copy.
        out.pixels = batch.pixels.into_vec();
    } else {
        out.pixels.extend_from_slice(batch.pixels.as_slice());
    }
    out.fine.extend(batch.fine);
    if let (Some(all), Some(these)) = (&mut out.coarse, batch.coarse) {
        all.extend(these);
    }
    Ok(())
}

/// Class names from `batches.meta` (CIFAR-10: `label_names`) or `meta`
/// (CIFAR-100: `fine_label_names`, `coarse_label_names`).
pub(super) fn class_names(meta: &[Named], coarse: bool) -> Result<ClassNames> {
    let [file] = meta else {
        return Err(DataError::invalid(
            "the python CIFAR format has one metadata file",
            "this is a bug in the loader; please report it",
        ));
    };
    let dict = pickle::parse_dict(&file.path, &file.bytes)?;
    if coarse {
        Ok(ClassNames {
            fine: dict.names("fine_label_names")?,
            coarse: Some(dict.names("coarse_label_names")?),
        })
    } else {
        Ok(ClassNames {
            fine: dict.names("label_names")?,
            coarse: None,
        })
    }
}

fn read_batch(file: &Named, coarse: bool) -> Result<Batch<'_>> {
    let mut dict = pickle::parse_dict(&file.path, &file.bytes)?;
    let fine = dict.labels(if coarse { "fine_labels" } else { "labels" })?;
    let coarse = coarse.then(|| dict.labels("coarse_labels")).transpose()?;
    let rows = dict.take_rows("data", IMAGE_BYTES)?;
    if rows.rows != fine.len() || coarse.as_ref().is_some_and(|c| c.len() != fine.len()) {
        return Err(DataError::corrupt(
            &file.path,
            format!("{} images but {} labels", rows.rows, fine.len()),
        ));
    }
    Ok(Batch {
        pixels: rows.data,
        fine,
        coarse,
    })
}
