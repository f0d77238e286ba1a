//! `twinsim compare`: the calibrated similarity of two images, or of every
//! pair listed in a CSV file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use twinsim_data::{ImageShape, Images};
use twinsim_learn::model::Model;
use twinsim_learn::similarity::{self, Comparison};
use twinsim_learn::{images, LearnError};

use crate::cli::{CompareArgs, GlobalArgs};
use crate::report::print_json;

/// How many unusable lines an error names before it only counts the rest.
const NAMED_LINES: usize = 10;

/// Runs `twinsim compare`.
pub fn run(global: &GlobalArgs, args: &CompareArgs) -> anyhow::Result<()> {
    let model = Model::load(&args.model, super::device(&args.device)?)?;
    let calibration = model.require_calibration(&args.model)?;
    match (&args.pairs, args.images.as_slice()) {
        (Some(file), _) => pairs(global, args, &model, &calibration, file),
        (None, [a, b]) => {
            let decoded = images::from_files(&[a.clone(), b.clone()], &model.card.preprocess)?;
            let c =
                similarity::compare(&model, &calibration, &decoded.select(&[0]), &decoded.select(&[1]))[0];
            if global.json {
                return print_json(&c);
            }
            let verdict = if c.same { "same" } else { "different" };
            println!(
                "similarity {:.4}  {verdict}  (threshold {:.4})",
                c.similarity, c.threshold
            );
            Ok(())
        }
        _ => anyhow::bail!(LearnError::config(
            "compare needs two images, or --pairs FILE.csv",
            "run `twinsim compare a.png b.png --model RUN_DIR`",
        )),
    }
}

/// One line of a pairs file.
struct Line {
    number: usize,
    a: PathBuf,
    b: PathBuf,
}

/// A scored line.
#[derive(Serialize)]
struct Scored {
    line: usize,
    a: PathBuf,
    b: PathBuf,
    #[serde(flatten)]
    comparison: Comparison,
}

/// A line left out, and why.
#[derive(Serialize)]
struct Skipped {
    line: usize,
    error: String,
}

#[derive(Serialize)]
struct PairsOutput {
    threshold: f64,
    results: Vec<Scored>,
    skipped: Vec<Skipped>,
}

/// Scores every line of `file`.
fn pairs(
    global: &GlobalArgs,
    args: &CompareArgs,
    model: &Model,
    calibration: &twinsim_learn::calibration::Calibration,
    file: &Path,
) -> anyhow::Result<()> {
    let lines = read_pairs(file)?;
    let paths: Vec<PathBuf> = {
        let mut unique: Vec<PathBuf> = lines.iter().flat_map(|l| [l.a.clone(), l.b.clone()]).collect();
        unique.sort();
        unique.dedup();
        unique
    };
    let decoded: HashMap<&PathBuf, _> = paths
        .iter()
        .zip(images::decode_each(&paths, &model.card.preprocess))
        .collect();
    let (mut usable, mut skipped) = (Vec::new(), Vec::new());
    for line in lines {
        match [&line.a, &line.b].map(|p| &decoded[p]) {
            [Ok(_), Ok(_)] => usable.push(line),
            [Err(e), _] | [_, Err(e)] => skipped.push(Skipped {
                line: line.number,
                error: e.to_string(),
            }),
        }
    }
    if !skipped.is_empty() && !args.skip_missing {
        anyhow::bail!(LearnError::config(
            format!(
                "{} of {} lines of {} name images that cannot be used:\n{}",
                skipped.len(),
                skipped.len() + usable.len(),
                file.display(),
                describe(&skipped)
            ),
            "fix those lines, or pass --skip-missing to score the other lines only",
        ));
    }
    let shape = images::conversion(&model.card.preprocess).shape();
    let side = |pick: fn(&Line) -> &PathBuf| -> anyhow::Result<Images> {
        let mut pixels = Vec::with_capacity(usable.len() * shape.len());
        for line in &usable {
            pixels.extend_from_slice(decoded[pick(line)].as_ref().expect("usable lines decoded"));
        }
        Ok(Images::new(pixels, ImageShape { ..shape })?)
    };
    let scores = similarity::compare(model, calibration, &side(|l| &l.a)?, &side(|l| &l.b)?);
    let results: Vec<Scored> = usable
        .into_iter()
        .zip(scores)
        .map(|(l, comparison)| Scored {
            line: l.number,
            a: l.a,
            b: l.b,
            comparison,
        })
        .collect();
    let output = PairsOutput {
        threshold: calibration.threshold,
        results,
        skipped,
    };
    if global.json {
        return print_json(&output);
    }
    print_table(&output);
    Ok(())
}

/// The pairs table on stdout, skipped lines on stderr.
fn print_table(output: &PairsOutput) {
    println!("line  similarity  decision   a  b");
    for r in &output.results {
        let verdict = if r.comparison.same { "same" } else { "different" };
        println!(
            "{:>4}  {:>10.4}  {verdict:<9}  {}  {}",
            r.line,
            r.comparison.similarity,
            r.a.display(),
            r.b.display()
        );
    }
    println!("threshold {:.4}", output.threshold);
    if !output.skipped.is_empty() {
        eprintln!(
            "skipped {} lines:\n{}",
            output.skipped.len(),
            describe(&output.skipped)
        );
    }
}

/// "  line 3: reason" for the first few lines.
fn describe(skipped: &[Skipped]) -> String {
    let mut text: Vec<String> = skipped
        .iter()
        .take(NAMED_LINES)
        .map(|s| format!("  line {}: {}", s.line, s.error))
        .collect();
    if skipped.len() > NAMED_LINES {
        text.push(format!("  … and {} more", skipped.len() - NAMED_LINES));
    }
    text.join("\n")
}

/// The pairs in `file`: two paths per line, relative ones taken from the
/// file's folder; an `a,b` header line is skipped. Refuses an empty file and
/// lines without two fields.
fn read_pairs(file: &Path) -> anyhow::Result<Vec<Line>> {
    let base = file.parent().unwrap_or(Path::new("."));
    // Read whole through the one checked opener: a FIFO or /dev/zero named
    // as the pairs file is refused instead of blocking or filling memory.
    let bytes = twinsim_data::read::read_file(file, twinsim_data::read::MAX_FILE_BYTES)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(bytes.as_slice());
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| twinsim_data::DataError::corrupt(file, e.to_string()))?;
        let number = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let (Some(a), Some(b)) = (record.get(0), record.get(1)) else {
            anyhow::bail!(LearnError::config(
                format!(
                    "{} line {number}: one field where a pair needs two",
                    file.display()
                ),
                "write one pair per line: path/to/a.png,path/to/b.png",
            ));
        };
        if lines.is_empty() && a.eq_ignore_ascii_case("a") && b.eq_ignore_ascii_case("b") {
            continue;
        }
        lines.push(Line {
            number,
            a: base.join(a),
            b: base.join(b),
        });
    }
    if lines.is_empty() {
        anyhow::bail!(LearnError::config(
            format!("{} holds no pairs", file.display()),
            "write one pair per line: path/to/a.png,path/to/b.png",
        ));
    }
    Ok(lines)
}
