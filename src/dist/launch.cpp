// Which rank this process is (the launcher's environment variables) and `--nproc N`, sdmlm's own
// launcher: N local copies of the command with torchrun's variables, stopped together on failure.
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "sdmlm/core.h"
#include "sdmlm/dist.h"

extern char** environ;

namespace sdmlm::dist {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, const char* launcher) {
  const char* v = env(name);
  int value = -1;
  try {
    size_t used = 0;
    value = std::stoi(v, &used);
    if (used != std::string(v).size()) value = -1;
  } catch (...) {
  }
  if (value < 0)
    fail_usage(std::string(name) + " (set by " + launcher + ") must be a non-negative integer, got \"" + v + "\"");
  return value;
}

// A free TCP port on the loopback interface (bound, read, released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail_io("--nproc: cannot open a socket to pick a rendezvous port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, (sockaddr*)&addr, sizeof addr) != 0 || ::getsockname(fd, (sockaddr*)&addr, &len) != 0) {
    ::close(fd);
    fail_io("--nproc: cannot bind a loopback port for the rendezvous");
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

}  // namespace

World detect() {
  World w;
  if (env("RANK") && env("WORLD_SIZE")) {  // torchrun, or --nproc (which sets the same variables)
    w.launcher = env("SDMLM_NPROC") ? "nproc" : "torchrun";
    w.rank = env_int("RANK", w.launcher.c_str());
    w.size = env_int("WORLD_SIZE", w.launcher.c_str());
    w.local_rank = env("LOCAL_RANK") ? env_int("LOCAL_RANK", w.launcher.c_str()) : w.rank;
    w.local_size = env("LOCAL_WORLD_SIZE") ? env_int("LOCAL_WORLD_SIZE", w.launcher.c_str()) : w.size;
  } else if (env("OMPI_COMM_WORLD_RANK") && env("OMPI_COMM_WORLD_SIZE")) {
    w.launcher = "mpi";
    w.rank = env_int("OMPI_COMM_WORLD_RANK", "mpirun");
    w.size = env_int("OMPI_COMM_WORLD_SIZE", "mpirun");
    w.local_rank = env("OMPI_COMM_WORLD_LOCAL_RANK") ? env_int("OMPI_COMM_WORLD_LOCAL_RANK", "mpirun") : 0;
    w.local_size = env("OMPI_COMM_WORLD_LOCAL_SIZE") ? env_int("OMPI_COMM_WORLD_LOCAL_SIZE", "mpirun") : 1;
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS") && env("SLURM_STEP_ID")) {  // inside srun, not sbatch
    w.launcher = "slurm";
    w.rank = env_int("SLURM_PROCID", "srun");
    w.size = env_int("SLURM_NTASKS", "srun");
    w.local_rank = env("SLURM_LOCALID") ? env_int("SLURM_LOCALID", "srun") : 0;
    w.local_size = 1;
    if (const char* per_node = env("SLURM_TASKS_PER_NODE"))
      w.local_size = std::max(1, std::atoi(per_node));  // "4(x2)" → 4
  } else if (env("PMI_RANK") && env("PMI_SIZE")) {      // MPICH / Intel MPI
    w.launcher = "mpi";
    w.rank = env_int("PMI_RANK", "mpirun");
    w.size = env_int("PMI_SIZE", "mpirun");
    w.local_rank = env("MPI_LOCALRANKID") ? env_int("MPI_LOCALRANKID", "mpirun") : 0;
    w.local_size = env("MPI_LOCALNRANKS") ? env_int("MPI_LOCALNRANKS", "mpirun") : 1;
  }
  if (w.size < 1) fail_usage("the world size (" + w.launcher + ") must be at least 1, got " + std::to_string(w.size));
  if (w.rank >= w.size)
    fail_usage("rank " + std::to_string(w.rank) + " (" + w.launcher + ") must be below the world size " +
               std::to_string(w.size));
  return w;
}

int run_workers(int nproc, const std::vector<std::string>& argv) {
  if (nproc < 1) fail_usage("--nproc must be at least 1, got " + std::to_string(nproc));
  if (env("RANK") || env("OMPI_COMM_WORLD_RANK") || env("PMI_RANK"))
    fail_usage("--nproc starts its own ranks; it cannot be used inside a job launched by torchrun, mpirun or srun");
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> vars;
    for (char** e = environ; *e; ++e) vars.emplace_back(*e);
    auto set = [&](const std::string& k, const std::string& v) { vars.push_back(k + "=" + v); };
    set("RANK", std::to_string(r));
    set("LOCAL_RANK", std::to_string(r));
    set("WORLD_SIZE", std::to_string(nproc));
    set("LOCAL_WORLD_SIZE", std::to_string(nproc));
    set("MASTER_ADDR", "127.0.0.1");
    set("MASTER_PORT", std::to_string(port));
    set("SDMLM_NPROC", std::to_string(nproc));
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& v : vars) cenv.push_back(const_cast<char*>(v.c_str()));
    cenv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, cargv.data(), cenv.data()) != 0) {
      for (pid_t p : pids) ::kill(p, SIGTERM);
      fail_io("--nproc: cannot start rank " + std::to_string(r));
    }
    pids.push_back(pid);
  }
  // Wait for all; the first failure stops the others (SIGTERM, then SIGKILL after 10 s).
  int code = 0;
  size_t left = pids.size();
  bool stopping = false;
  auto stop_time = std::chrono::steady_clock::now();
  std::vector<bool> done(pids.size(), false);
  while (left > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, stopping ? WNOHANG : 0);
    if (pid == 0) {
      if (std::chrono::steady_clock::now() - stop_time > std::chrono::seconds(10))
        for (size_t i = 0; i < pids.size(); ++i)
          if (!done[i]) ::kill(pids[i], SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (pid < 0) break;
    size_t i = 0;
    while (i < pids.size() && pids[i] != pid) ++i;
    if (i == pids.size()) continue;
    done[i] = true;
    --left;
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    if (rc != 0 && code == 0) {
      code = rc;
      std::cerr << "--nproc: rank " << i << " exited with code " << rc << "; stopping the other ranks\n";
      stopping = true;
      stop_time = std::chrono::steady_clock::now();
      for (size_t j = 0; j < pids.size(); ++j)
        if (!done[j]) ::kill(pids[j], SIGTERM);
    }
  }
  return code;
}

}  // namespace sdmlm::dist
