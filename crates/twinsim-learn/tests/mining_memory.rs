//! Mining and the triplet loss stay O(B²) in memory: at B = 1024 a (B, B, B)
//! float tensor would take 4 GB, and a per-triplet autograd graph as much
//! again. Measured as the growth of the process's peak resident memory
//! (Linux's VmHWM, reset through /proc/self/clear_refs) over one loss and
//! backward pass. Its own test binary, so no other test's allocations mix in.

#![cfg(target_os = "linux")]

use tch::{nn, Device, Kind, Tensor};
use twinsim_learn::distances::Distance;
use twinsim_learn::losses::{self, LossConfig, Mined};
use twinsim_learn::miners::{self, Miner};

const BATCH: i64 = 1024;
const DIM: i64 = 128;
const CLASSES: i64 = 32;
const MARGIN: f64 = 0.2;
/// Allowed growth, the miner's output included, in bytes: (B, B) scratch
/// tensors take 4-8 MB each; B³ floats would take 4 GB.
const BUDGET: i64 = 300 << 20;

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field}"));
    let kb: i64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a size in kB");
    kb * 1024
}

/// The growth of the peak resident memory while `f` runs, in bytes, and
/// what `f` returns.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (i64, T) {
    // "5" resets VmHWM to the current resident size (Linux ≥ 4.0).
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak through /proc/self/clear_refs");
    let before = status_bytes("VmRSS:");
    let out = f();
    (status_bytes("VmHWM:") - before, out)
}

/// B labels, `classes` classes of B / classes images each (a P×K batch).
fn pk_labels(batch: i64, classes: i64) -> Tensor {
    Tensor::arange(batch, (Kind::Int64, Device::Cpu)).remainder(classes)
}

fn triplet_loss() -> Box<dyn losses::Loss> {
    let vs = nn::VarStore::new(Device::Cpu);
    losses::build(&LossConfig::new("triplet"), &vs.root(), DIM, CLASSES).unwrap()
}

/// Mines (or not), computes the triplet loss and backpropagates; returns how
/// many triplets the miner listed (0 for batch-all, `None` for a rule).
fn step(miner: Option<&dyn Miner>, embeddings: &Tensor, labels: &Tensor) -> Option<i64> {
    let mined = miner.map(|m| m.mine(&embeddings.detach(), labels));
    let loss = triplet_loss().compute(embeddings, labels, mined.as_ref());
    loss.backward();
    assert!(
        loss.double_value(&[]) > 0.0,
        "random embeddings violate some triplets"
    );
    mined.as_ref().map_or(Some(0), Mined::listed)
}

/// The batch-all triplet loss the direct way, through a (B, B, B) tensor.
fn naive_batch_all(embeddings: &Tensor, labels: &Tensor) -> Tensor {
    let d = Distance::L2.farness(embeddings);
    let same = labels.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
    let itself = Tensor::eye(labels.size()[0], (Kind::Bool, Device::Cpu));
    let pos = same.logical_and(&itself.logical_not());
    let valid = pos.unsqueeze(2).logical_and(&same.logical_not().unsqueeze(1));
    let hinge = (d.unsqueeze(2) - d.unsqueeze(1) + MARGIN).relu() * valid;
    let active = hinge.gt(0.0).sum(Kind::Float);
    hinge.sum(Kind::Float) / active
}

fn loss_and_grad(embeddings: &Tensor, f: impl FnOnce(&Tensor) -> Tensor) -> (f64, Tensor) {
    let e = embeddings.detach().set_requires_grad(true);
    let loss = f(&e);
    loss.backward();
    (loss.double_value(&[]), e.grad())
}

fn assert_batch_all_matches_the_naive_cube() {
    let e = Tensor::randn([64, DIM], (Kind::Float, Device::Cpu));
    let labels = pk_labels(64, 8);
    let (fast, fast_grad) = loss_and_grad(&e, |e| triplet_loss().compute(e, &labels, None));
    let (naive, naive_grad) = loss_and_grad(&e, |e| naive_batch_all(e, &labels));
    assert!(
        (fast - naive).abs() <= 1e-5 * naive.abs(),
        "batch-all {fast} vs naive {naive}"
    );
    let gap = (&fast_grad - &naive_grad).norm().double_value(&[]) / naive_grad.norm().double_value(&[]);
    assert!(gap <= 1e-5, "batch-all gradient relative gap {gap:e}");
}

#[test]
fn triplet_mining_and_loss_at_batch_1024_stay_quadratic_in_memory() {
    tch::manual_seed(0);
    // Also warms up libtorch's thread pools before anything is measured.
    assert_batch_all_matches_the_naive_cube();

    let embeddings = Tensor::randn([BATCH, DIM], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let labels = pk_labels(BATCH, CLASSES);
    let batch_hard = miners::build("batch-hard", MARGIN).unwrap().unwrap();
    let semi_hard = miners::build("semi-hard", MARGIN).unwrap().unwrap();
    for (name, miner) in [
        ("batch-all", None),
        ("batch-hard", Some(&*batch_hard)),
        ("semi-hard", Some(&*semi_hard)),
    ] {
        let (growth, triplets) = peak_growth(|| step(miner, &embeddings, &labels));
        let mined = triplets.map_or("a rule, no list".into(), |t| {
            format!("{t} mined triplets ({} MB of indices)", (3 * 8 * t) >> 20)
        });
        eprintln!("{name}: {mined}, peak RSS growth {} MB", growth >> 20);
        assert!(
            growth <= BUDGET,
            "{name}: peak memory grew by {} MB",
            growth >> 20
        );
    }
}
