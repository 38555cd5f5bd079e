// Data-parallel jobs on PyTorch's distributed engine (c10d): Gloo on CPU, NCCL on CUDA.
//
// A process is one rank of a job when a launcher describes one in the environment: torchrun
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), mpirun (OMPI_COMM_WORLD_*), Slurm's
// srun (SLURM_PROCID, SLURM_NTASKS, ...) or `--nproc N` (sdmlm's own launcher, run_workers). With
// none, the world is one process and every collective is the identity.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace sdmlm::dist {

struct World {
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
  std::string launcher = "none";  // none, torchrun, nproc, mpi, slurm
  bool active() const { return size > 1; }
  bool main() const { return rank == 0; }
};

// What the environment says (no connection made). Errors name the variable at fault (exit 2).
World detect();

// Joins the job the environment describes: rendezvous through a TCPStore at MASTER_ADDR:MASTER_PORT
// (rank 0 hosts it unless torchrun's agent does), then a Gloo (cpu) or NCCL (cuda) group. A rank
// that does not arrive within `timeout` fails every rank with the missing ranks named. Sets the
// thread count to the cores over the local ranks unless OMP_NUM_THREADS is set. Idempotent.
void init(const torch::Device& device, std::chrono::seconds timeout = std::chrono::seconds(300));
const World& world();
// A job's rank on CUDA without an index takes GPU LOCAL_RANK; anything else is returned as is.
torch::Device device_for_rank(const torch::Device& device);

// Collectives over every rank (no-ops in a one-process world). Tensors live on the group's device.
void all_reduce_sum(std::vector<torch::Tensor>& tensors);
// Several scalars summed in one collective (integer counts stay exact below 2^53).
std::vector<double> all_reduce_sum(std::vector<double> values);
double all_reduce_sum(double value);
int64_t all_reduce_sum(int64_t value);
std::vector<std::string> all_gather(const std::string& value);  // every rank's value, by rank
// Every rank's list of byte strings (any bytes, not only UTF-8), by rank.
std::vector<std::vector<std::string>> all_gather_lists(const std::vector<std::string>& values);
torch::Tensor all_gather_rows(const torch::Tensor& rows);  // ranks' rows concatenated in rank order
void barrier();

// The contiguous share [begin, end) of n items that this rank takes.
std::pair<size_t, size_t> share(size_t n);

// Runs `work` on this rank's share of n items (it returns one string per item of [begin, end)) and
// returns every item's string, in item order, on every rank: sharded decoding.
std::vector<std::string> map_shares(size_t n,
                                    const std::function<std::vector<std::string>(size_t begin, size_t end)>& work);

// Sums the gradients of `parameters` over the ranks, in buckets of at most `bucket_bytes`, all
// launched before the first is waited on; a parameter without a gradient counts as zeros.
void all_reduce_gradients(const std::vector<torch::Tensor>& parameters, size_t bucket_bytes = 25u << 20);

// Fails (exit 4) unless every rank holds the same values (a checksum of `tensors`): the guard
// against ranks that silently diverged.
void check_replicas(const std::vector<torch::Tensor>& tensors, const std::string& what);

// `sdmlm ... --nproc N`: runs N copies of this command (argv without --nproc) as ranks 0..N-1 on
// this machine, each with torchrun's variables set, and returns the exit code: 0 when all succeed,
// else the first failure's (the others are stopped).
int run_workers(int nproc, const std::vector<std::string>& argv);

}  // namespace sdmlm::dist
