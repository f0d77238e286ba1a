//! Draws a CSV file's columns as lines against its first column, for the
//! benchmark scripts' plots:
//!
//! ```sh
//! cargo run --release -p twinsim-report --example line_csv -- IN.csv OUT.png TITLE [Y_LABEL]
//! ```
//!
//! The first line names the columns; every other line holds numbers.

use std::error::Error;

use twinsim_report::{line_chart, Series};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, title, rest @ ..] = args.as_slice() else {
        return Err("usage: line_csv IN.csv OUT.png TITLE [Y_LABEL]".into());
    };
    let text = std::fs::read_to_string(input)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let names: Vec<&str> = lines.next().ok_or("an empty CSV file")?.split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.trim().parse::<f64>())
                .collect::<Result<_, _>>()
        })
        .collect::<Result<_, _>>()?;
    let series: Vec<Series> = (1..names.len())
        .map(|c| Series {
            name: names[c].to_string(),
            points: rows.iter().map(|r| (r[0], r[c])).collect(),
        })
        .collect();
    let y_label = rest.first().map_or("value", String::as_str);
    line_chart(output, title, names[0], y_label, &series)?;
    Ok(())
}
