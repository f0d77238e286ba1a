//! Data-parallel training across processes: the world of ranks a process
//! belongs to, and the collectives training needs from it.
//!
//! Processes are started and connected by MPI (`mpirun -np N twinsim train
//! ...`, or SLURM's `srun`), never by a protocol of our own. Every rank
//! builds the same global batch from the shared seed and takes its own
//! share of it ([`Shard`]); the embeddings of the whole global batch are
//! gathered so that mining and the loss see it all ([`World::gather_batch`]);
//! the model's gradients are then summed over the ranks
//! ([`World::all_reduce_sum`]), which makes one step on N ranks the step one
//! process would take on the whole batch (batch-norm statistics aside: each
//! rank normalises with its own share's, as PyTorch's DDP does without
//! SyncBatchNorm).
//!
//! A process not started by a launcher is a world of one, and every
//! collective is then free.

#[cfg(feature = "mpi")]
mod mpi;

#[cfg(feature = "mpi")]
use tch::Kind;
use tch::{Device, Tensor};
use twinsim_data::Images;

use crate::error::{LearnError, Result};
use crate::model::Model;

/// The ranks of one training job, as seen from one of them.
pub struct World {
    rank: usize,
    size: usize,
    /// Ranks on this machine, to share its cores among them, and this
    /// rank's place among them, to pick its GPU.
    local_size: usize,
    local_rank: usize,
    backend: Backend,
}

enum Backend {
    Single,
    #[cfg(feature = "mpi")]
    Mpi(mpi::Mpi),
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "World(rank {} of {})", self.rank, self.size)
    }
}

/// Environment variables that launchers set in the processes they start:
/// Open MPI's mpirun, MPICH's and Intel MPI's hydra, PMIx, and SLURM's srun.
const LAUNCHER_VARS: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_ID"];

/// Environment variables that tell how many ranks share this machine, and
/// which of them this one is.
#[cfg(feature = "mpi")]
const LOCAL_SIZE_VARS: &[&str] = &[
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "SLURM_STEP_TASKS_PER_NODE",
];
#[cfg(feature = "mpi")]
const LOCAL_RANK_VARS: &[&str] = &["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"];

impl World {
    /// A world of one process.
    pub fn single() -> World {
        World {
            rank: 0,
            size: 1,
            local_size: 1,
            local_rank: 0,
            backend: Backend::Single,
        }
    }

    /// Joins the job this process was started in by mpirun or srun, or is a
    /// world of one when no launcher started it. Fails when a launcher
    /// started several processes but this build has no MPI to join them.
    pub fn from_launcher() -> Result<World> {
        if !LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            return Ok(World::single());
        }
        World::join()
    }

    #[cfg(feature = "mpi")]
    fn join() -> Result<World> {
        let mpi = mpi::Mpi::init().ok_or_else(|| {
            LearnError::config(
                "MPI was already initialised in this process",
                "start twinsim once per rank: mpirun -np N twinsim train ...",
            )
        })?;
        let (rank, size) = (mpi.rank(), mpi.size());
        Ok(World {
            rank,
            size,
            local_size: from_env(LOCAL_SIZE_VARS).unwrap_or(1).clamp(1, size),
            local_rank: from_env(LOCAL_RANK_VARS).unwrap_or(rank),
            backend: Backend::Mpi(mpi),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn join() -> Result<World> {
        let size = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
            .unwrap_or(1);
        if size <= 1 {
            return Ok(World::single());
        }
        Err(LearnError::config(
            format!("started as one of {size} processes, but this twinsim was built without MPI"),
            "build it with MPI (./dev build, or cargo build --release --features mpi, with libopenmpi-dev installed)",
        ))
    }

    /// This process's rank, 0-based.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// How many ranks the job has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this rank is the one that writes files and prints results.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// How many ranks run on this machine (1 when unknown).
    pub fn local_size(&self) -> usize {
        self.local_size
    }

    /// This rank's place among those on its machine.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Replaces `t` (float32, any shape and device) by its sum over the ranks.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn all_reduce_sum(&self, t: &Tensor) {
        match &self.backend {
            Backend::Single => {}
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => with_host(t, Kind::Float, |buf| m.all_reduce_sum(buf)),
        }
    }

    /// Replaces `t` by its mean over the ranks.
    pub fn all_reduce_mean(&self, t: &Tensor) {
        if self.size > 1 {
            self.all_reduce_sum(t);
            tch::no_grad(|| {
                let _ = t.shallow_clone().g_div_scalar_(self.size as f64);
            });
        }
    }

    /// Replaces `t` (any kind) by rank 0's `t`.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub fn broadcast(&self, t: &Tensor) {
        match &self.backend {
            Backend::Single => {}
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => with_host(t, t.kind(), |buf| m.broadcast(buf)),
        }
    }

    /// Every rank's `local` (n_r, ...) float32, concatenated in rank order
    /// on the CPU; n_r may differ between ranks, the other dimensions not.
    pub fn all_gather(&self, local: &Tensor) -> Tensor {
        match &self.backend {
            Backend::Single => local.to_device(Device::Cpu),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => {
                let local = local
                    .detach()
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous();
                let size = local.size();
                let row: i64 = size[1..].iter().product();
                let counts = m.all_gather_count(local.numel() as i64);
                let rows: i64 = counts.iter().sum::<i64>() / row.max(1);
                let mut shape = size.clone();
                shape[0] = rows;
                let out = Tensor::zeros(shape.as_slice(), (Kind::Float, Device::Cpu));
                // SAFETY: both tensors are contiguous float32 on the CPU and
                // live through the call; the slices cover exactly their elements.
                let (mine, all) = unsafe { (host_slice::<f32>(&local), host_slice::<f32>(&out)) };
                m.all_gather(mine, &counts, all);
                out
            }
        }
    }

    /// The global batch's embeddings (B, D) in the global batch's order,
    /// from each rank's share `local` (b, D) laid out by `shard`. Only the
    /// rows of `local` carry gradients: the loss on the result, computed
    /// alike on every rank, sends each rank the gradients of its own rows,
    /// and [`World::all_reduce_sum`] of the model's gradients completes them.
    pub fn gather_batch(&self, local: &Tensor, shard: &Shard) -> Tensor {
        if self.size == 1 {
            return local.shallow_clone();
        }
        let all = self.all_gather(local).to_device(local.device());
        let b = local.size()[0];
        let mut parts: Vec<Tensor> = (0..self.size as i64).map(|r| all.narrow(0, r * b, b)).collect();
        parts[self.rank] = local.shallow_clone();
        let rank_order = Tensor::cat(&parts, 0);
        match &shard.to_global {
            Some(order) => rank_order.index_select(0, order),
            None => rank_order,
        }
    }
}

/// This process's rank as its launcher announced it (0 when none did):
/// known before MPI starts, so a program can quiet ranks other than 0 from
/// its first line.
pub fn launcher_rank() -> usize {
    ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// Which rows of each global batch this rank computes: `positions` (b,)
/// int64 into the batch, and, when the ranks' positions concatenated in
/// rank order are not already the batch's order, `to_global` (B,) that
/// puts them back in it.
#[derive(Debug)]
pub struct Shard {
    pub positions: Tensor,
    pub to_global: Option<Tensor>,
}

impl Shard {
    /// The shares of a batch of `len` items among `size` ranks: contiguous
    /// slices, or for a batch of pairs [a₁..a_B, b₁..b_B] a slice of each
    /// half, so each rank's share is itself a batch of whole pairs.
    pub fn new(len: usize, pairs: bool, rank: usize, size: usize) -> Shard {
        let of = |r: usize| -> Vec<i64> {
            if pairs {
                let (half, per) = (len / 2, len / 2 / size);
                let a = (r * per..(r + 1) * per).map(|i| i as i64);
                a.clone().chain(a.map(|i| i + half as i64)).collect()
            } else {
                let per = len / size;
                (r * per..(r + 1) * per).map(|i| i as i64).collect()
            }
        };
        let rank_order: Vec<i64> = (0..size).flat_map(of).collect();
        let to_global = (!rank_order.iter().enumerate().all(|(i, &p)| i as i64 == p)).then(|| {
            let mut inverse = vec![0i64; rank_order.len()];
            for (i, &p) in rank_order.iter().enumerate() {
                inverse[p as usize] = i as i64;
            }
            Tensor::from_slice(&inverse)
        });
        Shard {
            positions: Tensor::from_slice(&of(rank)),
            to_global,
        }
    }

    /// This shard with its tensors on `device`, copied there once rather
    /// than at every step (a copy from the host waits for a GPU's queue).
    pub fn on(self, device: Device) -> Shard {
        Shard {
            positions: self.positions.to_device(device),
            to_global: self.to_global.map(|t| t.to_device(device)),
        }
    }
}

/// The first of `vars` set to a number (SLURM's "2(x3)", 2 tasks on each
/// of 3 nodes, reads as 2).
#[cfg(feature = "mpi")]
fn from_env(vars: &[&str]) -> Option<usize> {
    vars.iter().find_map(|v| {
        let text = std::env::var(v).ok()?;
        text.split(['(', ',']).next()?.trim().parse().ok()
    })
}

/// Runs `f` on `t`'s elements as a host slice of `kind` (`t`'s own when it
/// is a contiguous CPU tensor of that kind, else a copy written back after).
#[cfg(feature = "mpi")]
fn with_host(t: &Tensor, kind: Kind, f: impl FnOnce(&mut [u8])) {
    let direct = t.device() == Device::Cpu && t.is_contiguous() && t.kind() == kind;
    let host = if direct {
        t.shallow_clone()
    } else {
        t.detach().to_device(Device::Cpu).to_kind(kind).contiguous()
    };
    // SAFETY: `host` is contiguous on the CPU and outlives the slice.
    f(unsafe { host_slice::<u8>(&host) });
    if !direct {
        tch::no_grad(|| t.shallow_clone().copy_(&host));
    }
}

/// `t`'s elements as a mutable slice of `T`.
///
/// # Safety
/// `t` must be contiguous, on the CPU, hold elements whose bytes are valid
/// `T`s (any for `u8`), and outlive the slice, with no other access to its
/// data meanwhile.
#[cfg(feature = "mpi")]
unsafe fn host_slice<'a, T>(t: &Tensor) -> &'a mut [T] {
    let bytes = t.numel() * t.kind().elt_size_in_bytes();
    if bytes == 0 {
        // An empty tensor's data pointer may be null, which no slice may hold.
        return &mut [];
    }
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, bytes / std::mem::size_of::<T>())
}

/// Fails when a batch of `batch_size` items cannot be shared evenly among
/// `size` ranks: P x K batches need P divisible by the ranks (each rank
/// then holds whole classes), pair batches the number of pairs, shuffled
/// batches the number of images.
pub fn check_batch(sampler: &str, batch_size: usize, per_class: usize, size: usize) -> Result<()> {
    let (unit, what, count) = match sampler {
        "pk" => (per_class, "classes (P)", batch_size / per_class.max(1)),
        "shuffle" => (1, "images", batch_size),
        _ => (2, "pairs", batch_size / 2),
    };
    if count % size == 0 {
        return Ok(());
    }
    let fit = count.div_ceil(size) * size * unit;
    Err(LearnError::config(
        format!("a batch of {batch_size} images has {count} {what}, which {size} ranks cannot share evenly"),
        format!("pass --batch-size {fit} (or another multiple of {})", size * unit),
    ))
}

impl World {
    /// `model`'s embeddings (N, D) of `images`, computed in `batch`-image
    /// batches shared among the ranks and gathered on every rank in order.
    /// Shares start on batch boundaries, so every batch is the one a single
    /// process would embed and the result is the same.
    pub fn embed_images(&self, model: &Model, images: &Images, batch: usize) -> Tensor {
        if self.size == 1 {
            return model.embed_images(images, batch);
        }
        let batches = images.len().div_ceil(batch.max(1));
        let share = |r: usize| (r * batches / self.size * batch).min(images.len());
        let mine: Vec<usize> = (share(self.rank)..share(self.rank + 1)).collect();
        let local = model.embed_images(&images.select(&mine), batch);
        self.all_gather(&local.view([-1, model.dim()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samplers::{self, SamplerConfig};

    fn positions(s: &Shard) -> Vec<i64> {
        Vec::<i64>::try_from(&s.positions).unwrap()
    }

    /// Each rank's share of every P x K batch of an epoch: whole classes, K
    /// images each; the shares are disjoint and together the batch, so
    /// the ranks see exactly the images one process sees, each once.
    #[test]
    fn ranks_share_a_pk_batch_as_whole_classes() {
        let labels: Vec<u32> = (0..400).map(|i| i % 10).collect();
        let cfg = SamplerConfig {
            name: "pk",
            batch_size: 48,
            per_class: 6,
            seed: 1,
        };
        let sampler = samplers::build(&cfg, &labels, 10).unwrap();
        for size in [1, 2, 4, 8] {
            check_batch("pk", 48, 6, size).unwrap();
            let shards: Vec<Shard> = (0..size).map(|r| Shard::new(48, false, r, size)).collect();
            assert!(shards.iter().all(|s| s.to_global.is_none()));
            for batch in sampler.epoch(3) {
                let mut seen = Vec::new();
                for s in &shards {
                    let share: Vec<usize> = positions(s).iter().map(|&p| batch[p as usize]).collect();
                    let mut counts = std::collections::BTreeMap::new();
                    for &i in &share {
                        *counts.entry(labels[i]).or_insert(0) += 1;
                    }
                    assert_eq!(counts.len(), 8 / size, "P/size classes");
                    assert!(counts.values().all(|&k| k == 6), "K images each");
                    seen.extend(share);
                }
                assert_eq!(seen, batch);
            }
        }
    }

    /// A batch of pairs [a, b] shares as whole pairs, and `to_global` puts
    /// the ranks' rows back in the batch's order.
    #[test]
    fn ranks_share_a_batch_of_pairs_as_whole_pairs() {
        let (a, b) = (Shard::new(8, true, 0, 2), Shard::new(8, true, 1, 2));
        assert_eq!(positions(&a), [0, 1, 4, 5]);
        assert_eq!(positions(&b), [2, 3, 6, 7]);
        let rank_order: Vec<i64> = [positions(&a), positions(&b)].concat();
        let back = Vec::<i64>::try_from(a.to_global.as_ref().unwrap()).unwrap();
        let restored: Vec<i64> = back.iter().map(|&i| rank_order[i as usize]).collect();
        assert_eq!(restored, (0..8).collect::<Vec<i64>>());
    }

    #[test]
    fn uneven_batches_are_refused_with_a_size_that_fits() {
        let e = check_batch("pk", 56, 8, 2).unwrap_err();
        assert!(e.to_string().contains("7 classes (P)"), "{e}");
        assert!(e.hint().unwrap().contains("--batch-size 64"));
        let e = check_batch("pairs", 10, 32, 4).unwrap_err();
        assert!(e.to_string().contains("5 pairs"), "{e}");
        assert!(e.hint().unwrap().contains("--batch-size 16"));
        check_batch("balanced-pairs", 16, 32, 4).unwrap();
        let e = check_batch("shuffle", 10, 32, 4).unwrap_err();
        assert!(e.to_string().contains("10 images"), "{e}");
        assert!(e.hint().unwrap().contains("--batch-size 12"));
    }

    /// A world of one: every collective leaves the data as it is.
    #[test]
    fn a_single_process_is_a_world_of_one() {
        let w = World::single();
        assert_eq!((w.rank(), w.size(), w.is_root()), (0, 1, true));
        let t = Tensor::from_slice(&[1.0f32, 2.0]);
        w.all_reduce_mean(&t);
        w.broadcast(&t);
        assert_eq!(Vec::<f32>::try_from(&w.all_gather(&t)).unwrap(), [1.0, 2.0]);
        let shard = Shard::new(2, false, 0, 1);
        assert!(w.gather_batch(&t, &shard).equal(&t));
    }
}
