//! Data-parallel training under a real `mpirun` with 2 ranks on loopback:
//! the step two ranks take is the step one process takes on the whole
//! batch, only rank 0 writes, resumes keep the world size, and a rank that
//! dies ends the job. Built only with MPI (`./dev test` enables it).
#![cfg(feature = "mpi")]

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_user_error, run, twinsim};
use serde_json::Value;
use tch::Tensor;

/// One epoch of two steps on 144 images, on the batch-norm-free `mlp`:
/// batches of 8 classes x 8 images, which 2 ranks share as 4 x 8 each. In
/// float32: bfloat16 (`auto` on a CPU with AVX512-BF16) rounds a product
/// computed over half the batch differently from the whole batch's, by far
/// more than the 1e-5 that the sharing itself must keep to.
const TWO_STEPS: &[&str] = &[
    "train",
    "--precision",
    "fp32",
    "--dataset",
    "mnist-sample",
    "--arch",
    "mlp",
    "--per-class",
    "16",
    "--batch-size",
    "64",
    "--per-class-batch",
    "8",
    "--epochs",
    "1",
    "--threads",
    "1",
    "--seed",
    "3",
];

/// `twinsim ARGS` as `ranks` MPI processes (Open MPI's mpirun, allowed to
/// run as root as CI does, on this machine only).
fn mpirun(cache: &Path, ranks: usize) -> Command {
    let probe = twinsim(cache);
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &ranks.to_string(),
    ]);
    for (k, v) in probe.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.arg(probe.get_program());
    cmd
}

fn weights(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn two_ranks_take_the_step_one_process_takes_on_the_whole_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let (ok, _, err) = run(twinsim(tmp.path()).args(TWO_STEPS).arg("--out").arg(&one));
    assert!(ok, "{err}");
    let (ok, out, err) = run(mpirun(tmp.path(), 2).args(TWO_STEPS).arg("--out").arg(&two));
    assert!(ok, "{out}{err}");
    // Rank 0 alone printed the results.
    assert_eq!(out.matches("model written to").count(), 1, "{out}");

    let loss = |dir: &Path| {
        let line = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        serde_json::from_str::<Value>(line.trim()).unwrap()["loss"]
            .as_f64()
            .unwrap()
    };
    assert!(
        (loss(&one) - loss(&two)).abs() < 1e-5,
        "{} vs {}",
        loss(&one),
        loss(&two)
    );
    // Weights, Adam's moments and step: everything the step changed.
    let (a, b) = (
        weights(&one.join("last.safetensors")),
        weights(&two.join("last.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    assert!(a.keys().any(|k| k.starts_with("optimizer.m.model.fc1")));
    for (name, ta) in &a {
        if ta.kind() == tch::Kind::Uint8 {
            continue; // the progress record
        }
        let tb = &b[name];
        let diff = (ta - tb).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{name} differs by {diff}");
    }
    assert_eq!(json(&two.join("config.json"))["world-size"], 2);
    // Evaluation embedded in shares gathered in order: the same figures.
    assert_eq!(
        json(&one.join("summary.json"))["test_precision_at_1"],
        json(&two.join("summary.json"))["test_precision_at_1"]
    );
}

#[test]
fn a_batch_the_ranks_cannot_share_and_a_resume_with_other_ranks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut odd: Vec<&str> = TWO_STEPS.to_vec();
    let at = odd.iter().position(|a| *a == "64").unwrap();
    odd[at] = "56"; // 7 classes of 8
    let (ok, _, err) = run(mpirun(tmp.path(), 2).args(&odd).arg("--out").arg(&run_dir));
    assert_user_error(ok, &err, "7 classes (P), which 2 ranks cannot share evenly");
    assert!(err.contains("--batch-size 64"), "{err}");
    assert!(
        !run_dir.join("config.json").exists(),
        "nothing is written for a refused run"
    );

    let (ok, out, err) = run(mpirun(tmp.path(), 2).args(TWO_STEPS).arg("--out").arg(&run_dir));
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(twinsim(tmp.path()).args(["train", "--resume"]).arg(&run_dir));
    assert_user_error(ok, &err, "was trained by 2 process(es), but this resume has 1");
    assert!(err.contains("mpirun -np 2"), "{err}");
}

/// The pid of the rank-`rank` process whose command line names `marker`.
fn rank_pid(marker: &str, rank: usize) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let environ = std::fs::read(e.path().join("environ")).ok()?;
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        let has = |hay: &[u8], needle: &str| hay.split(|&b| b == 0).any(|s| s == needle.as_bytes());
        (has(&cmdline, marker) && has(&environ, &wanted)).then_some(pid)
    })
}

#[test]
fn a_rank_that_dies_ends_the_job_with_an_error_instead_of_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("long-run");
    let marker = run_dir.to_str().unwrap().to_string();
    let mut job = mpirun(tmp.path(), 2)
        .args([
            "train",
            "--dataset",
            "mnist-sample",
            "--arch",
            "mlp",
            "--epochs",
            "500",
        ])
        .args(["--threads", "1", "--out", &marker])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    // Wait for the first epoch, so both ranks are inside the training loop.
    let started = Instant::now();
    while !run_dir.join("metrics.jsonl").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = rank_pid(&marker, 1).expect("rank 1 is running");
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();

    let killed = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            let _ = job.kill();
            panic!("rank 0 was still running 60 s after rank 1 died");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("rank 1"),
        "the error names the rank that died: {err}"
    );
    assert!(rank_pid(&marker, 0).is_none(), "rank 0 is gone too");
}

/// `embed` and `evaluate` under 2 ranks: each embeds a share, rank 0
/// gathers them in order and alone writes; the results are one process's.
#[test]
fn ranks_embed_shares_and_rank_0_writes_what_one_process_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let (ok, _, err) = run(twinsim(tmp.path()).args(TWO_STEPS).arg("--out").arg(&model));
    assert!(ok, "{err}");
    let embed = |mut cmd: Command, out: &str| {
        let out = tmp.path().join(out);
        let (ok, stdout, err) = run(cmd
            .args(["embed", "--dataset", "mnist-sample:test", "--model"])
            .arg(&model)
            .arg("-o")
            .arg(&out));
        assert!(ok, "{stdout}{err}");
        std::fs::read(out.join("embeddings.npy")).unwrap()
    };
    let one = embed(twinsim(tmp.path()), "one");
    let two = embed(mpirun(tmp.path(), 2), "two");
    assert!(one.len() > 100_000, "a few thousand embeddings");
    assert!(one == two, "the gathered embeddings differ from one process's");

    let evaluate = |mut cmd: Command| {
        let (ok, stdout, err) = run(cmd
            .args([
                "--json",
                "evaluate",
                "--dataset",
                "mnist-sample",
                "--no-baselines",
            ])
            .arg(&model));
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&stdout).expect("rank 0 alone prints one object");
        (
            v["model"]["precision_at_1"].clone(),
            v["model"]["mean_average_precision_at_r"].clone(),
        )
    };
    assert_eq!(evaluate(twinsim(tmp.path())), evaluate(mpirun(tmp.path(), 2)));
}
