//! The oracle fixtures shared by the learning core's tests:
//! `../shared/oracle/fixtures/`, or `$TWINSIM_SHARED_ORACLE`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The case `name` of the fixture file `file` (`losses.json`, `metrics.json`),
/// each file read once per test binary.
pub fn case(file: &str, name: &str) -> &'static Value {
    fixture(file)["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{file} has no cases"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name} in {file}"))
}

/// The whole fixture file `file`, parsed.
pub fn fixture(file: &str) -> &'static Value {
    static FILES: OnceLock<Mutex<HashMap<String, &'static Value>>> = OnceLock::new();
    let mut files = FILES.get_or_init(Default::default).lock().unwrap();
    files.entry(file.to_string()).or_insert_with(|| {
        let dir = std::env::var_os("TWINSIM_SHARED_ORACLE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/oracle/fixtures")
            });
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (set TWINSIM_SHARED_ORACLE to the fixtures folder)",
                path.display()
            )
        });
        Box::leak(Box::new(serde_json::from_str(&text).expect("fixtures are JSON")))
    })
}
