//! The MPI backend: collectives over MPI_COMM_WORLD on host buffers
//! (rsmpi, over whatever MPI the build found: Open MPI from Debian's
//! libopenmpi-dev by default). Device tensors are staged through the host.

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

/// Bytes per MPI call, well under MPI's 32-bit counts.
const CHUNK: usize = 1 << 30;

/// An initialised MPI and its world communicator; MPI is finalised when
/// this is dropped.
pub(super) struct Mpi {
    world: SimpleCommunicator,
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI; `None` when it already was in this process.
    pub fn init() -> Option<Mpi> {
        let universe = mpi::initialize()?;
        Some(Mpi {
            world: universe.world(),
            _universe: universe,
        })
    }

    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    pub fn size(&self) -> usize {
        self.world.size() as usize
    }

    /// Sums `buf`, the bytes of float32 values, over the ranks, in place.
    pub fn all_reduce_sum(&self, buf: &mut [u8]) {
        // SAFETY: every bit pattern is a valid f32; tensors' data is aligned
        // for their element type, so the prefix and suffix are empty.
        let (pre, values, post) = unsafe { buf.align_to_mut::<f32>() };
        assert!(pre.is_empty() && post.is_empty(), "float32 buffer is aligned");
        for part in values.chunks_mut(CHUNK / 4) {
            let send = part.to_vec();
            self.world
                .all_reduce_into(&send[..], part, SystemOperation::sum());
        }
    }

    /// Replaces `buf` by rank 0's.
    pub fn broadcast(&self, buf: &mut [u8]) {
        let root = self.world.process_at_rank(0);
        for part in buf.chunks_mut(CHUNK) {
            root.broadcast_into(part);
        }
    }

    /// Every rank's `count`, in rank order.
    pub fn all_gather_count(&self, count: i64) -> Vec<i64> {
        let mut all = vec![0i64; self.size()];
        self.world.all_gather_into(&count, &mut all[..]);
        all
    }

    /// Concatenates every rank's `mine` into `all`, in rank order; `counts`
    /// are the lengths of each rank's `mine` (from [`Mpi::all_gather_count`]).
    pub fn all_gather(&self, mine: &[f32], counts: &[i64], all: &mut [f32]) {
        let counts: Vec<Count> = counts
            .iter()
            .map(|&c| Count::try_from(c).expect("a rank's share fits MPI's 32-bit counts"))
            .collect();
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |at, &c| {
                let here = *at;
                *at += c;
                Some(here)
            })
            .collect();
        let mut partition = PartitionMut::new(all, &counts[..], &displs[..]);
        self.world.all_gather_varcount_into(mine, &mut partition);
    }
}
