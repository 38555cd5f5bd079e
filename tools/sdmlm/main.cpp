// sdmlm command-line entry point: builds the command tree and maps errors to exit codes.
#include <CLI/CLI.hpp>
#include <iostream>

#include "commands.h"
#include "sdmlm/core.h"

namespace sdmlm::cli {
std::vector<std::string> g_argv;  // read by --nproc, which reruns the command as its ranks
}

int main(int argc, char** argv) {
  sdmlm::cli::g_argv.assign(argv, argv + argc);
  CLI::App app{"sdmlm — Similarity-Distance-Magnitude estimators and SDM language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("sdmlm ") + sdmlm::version());
  sdmlm::cli::Runner runner;
  sdmlm::cli::add_sdm_commands(app, runner);
  sdmlm::cli::add_lm_commands(app, runner);
  sdmlm::cli::add_data_commands(app, runner);
  sdmlm::cli::add_train_commands(app, runner);
  sdmlm::cli::add_verify_commands(app, runner);
  sdmlm::cli::add_experiment_commands(app, runner);
  sdmlm::cli::add_serve_commands(app, runner);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return static_cast<int>(sdmlm::ExitCode::kUsage);
  }
  try {
    if (!runner) throw sdmlm::Error(sdmlm::ExitCode::kUsage, "no command given; see --help");
    runner();
    return 0;
  } catch (const sdmlm::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    std::cerr << "error: internal tensor error: " << e.what_without_backtrace() << "\n";
    return static_cast<int>(sdmlm::ExitCode::kInternal);
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory\n";
    return static_cast<int>(sdmlm::ExitCode::kIo);
  } catch (const std::filesystem::filesystem_error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(sdmlm::ExitCode::kIo);
  } catch (const std::exception& e) {
    std::cerr << "error: internal: " << e.what() << "\n";
    return static_cast<int>(sdmlm::ExitCode::kInternal);
  }
}
