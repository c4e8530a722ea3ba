// Time and peak memory of the synthetic world (plugins/synth) through the real node path: writes two
// workflows, runs `couplet` on each as a child process (no cache), and reports the node times from
// provenance.json, the child's peak RSS (wait4) and the artifact sizes, extrapolated to the global size
// of 56,112 cells × 1,827 days (linear in cells: blocks of cells are independent).
//
//   bench_synth_world [--rows 84] [--cols 167] [--truth-rows 7] [--days 1827] [--threads 2] [--dir DIR]
//
//   1. synth.world alone on rows × cols cells (default 84 × 167 = 1/4 of the global cell count):
//      the weather generator without the water balance model;
//   2. synth.world + synth.truth on truth-rows × cols cells (default 7 × 167 = 1/48): the truth run;
//   3. the weather generator's pure code in this process, one thread, no store (what the node adds on
//      top of it is HDF5 writing).
#include "synth/world.hpp"

#include <nlohmann/json.hpp>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;
namespace fs = std::filesystem;

namespace {

constexpr double kGlobalCells = 56112, kGlobalDays = 1827;

struct Run {
  double wall = 0;
  long peak_rss_mb = 0;
  nlohmann::json provenance;
  fs::path artifacts;
};

Run run_couplet(const fs::path& workflow, const fs::path& runs, int threads) {
  const std::string cli = COUPLET_CLI, plugins = COUPLET_PLUGIN_DIR, wf = workflow.string(), rd = runs.string(),
                    th = std::to_string(threads);
  std::vector<std::string> args{cli, "--plugin-path", plugins, "run", "-q", "--no-cache", wf, "--runs-dir", rd,
                                "--threads", th};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  pid_t pid;
  if (posix_spawn(&pid, cli.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
    std::perror("posix_spawn");
    std::exit(1);
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  Run r;
  r.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.peak_rss_mb = ru.ru_maxrss / 1024;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "couplet failed on %s\n", wf.c_str());
    std::exit(1);
  }
  const fs::path run_dir = runs / "synth_bench" / "latest";
  std::ifstream in(run_dir / "provenance.json");
  r.provenance = nlohmann::json::parse(in);
  r.artifacts = run_dir / "artifacts";
  return r;
}

double node_seconds(const Run& r, const std::string& id) {
  for (auto& n : r.provenance["nodes"])
    if (n["id"] == id) return n["seconds"].get<double>();
  return -1;
}

double mib(const fs::path& p) { return fs::exists(p) ? static_cast<double>(fs::file_size(p)) / (1 << 20) : 0; }

fs::path write_workflow(const fs::path& dir, const std::string& tag, int rows, int cols, int days, bool truth) {
  const fs::path f = dir / (tag + ".toml");
  std::ofstream o(f);
  o << "couplet = 1\nname = \"synth_bench\"\nseed = 1\n[[node]]\nid = \"world\"\nplugin = \"synth.world\"\n"
    << "params = { rows = " << rows << ", cols = " << cols << ", days = " << days
    << ", lat_min = -55.0, lat_max = 70.0, lon_min = -180.0, lon_max = 180.0 }\n";
  if (truth)
    o << "[[node]]\nid = \"truth\"\nplugin = \"synth.truth\"\ninputs = { forcing = \"world.forcing\", "
         "hidden_statics = \"world.hidden_statics\", hidden_params = \"world.hidden_params\" }\n";
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int rows = 84, cols = 167, truth_rows = 7, days = 1827, threads = 2;
  fs::path dir = fs::temp_directory_path() / "couplet-bench-synth";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rows")) rows = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--cols")) cols = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--truth-rows")) truth_rows = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--days")) days = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  const double global = kGlobalCells * kGlobalDays;

  {
    const double cells = static_cast<double>(rows) * cols, cd = cells * days, scale = global / cd;
    const Run r = run_couplet(write_workflow(dir, "world", rows, cols, days, false), dir / "runs_world", threads);
    const double t = node_seconds(r, "world");
    const double size = mib(r.artifacts / "world/forcing.h5");
    std::printf("synth.world (weather, statics, hidden parameters; no WBM): %d x %d = %.0f cells x %d days "
                "(%.4f of global), %d threads\n", rows, cols, cells, days, cd / global, threads);
    std::printf("  node %.2f s (%.2f M cell-days/s), couplet run %.2f s, peak RSS %ld MB, forcing.h5 %.0f MiB\n", t,
                cd / t / 1e6, r.wall, r.peak_rss_mb, size);
    std::printf("  extrapolated to 56,112 x 1,827: node %.0f s, forcing.h5 %.1f GiB\n", t * scale, size * scale / 1024);
  }
  {
    const double cells = static_cast<double>(truth_rows) * cols, cd = cells * days, scale = global / cd;
    const Run r = run_couplet(write_workflow(dir, "truth", truth_rows, cols, days, true), dir / "runs_truth", threads);
    const double tw = node_seconds(r, "world"), tt = node_seconds(r, "truth");
    const double size = mib(r.artifacts / "truth/truth.h5") + mib(r.artifacts / "truth/reanalysis.h5") +
                        mib(r.artifacts / "truth/observation.h5");
    std::printf("synth.world + synth.truth (WBM with 1 spin-up year, irrigation, products): %d x %d = %.0f cells x "
                "%d days (%.4f of global), %d threads\n", truth_rows, cols, cells, days, cd / global, threads);
    std::printf("  world %.2f s, truth %.2f s (%.3f M cell-days/s), couplet run %.2f s, peak RSS %ld MB, "
                "truth+products %.0f MiB\n", tw, tt, cd / tt / 1e6, r.wall, r.peak_rss_mb, size);
    std::printf("  extrapolated to 56,112 x 1,827: truth %.0f s (%.1f h), world + truth %.0f s, products %.1f GiB\n",
                tt * scale, tt * scale / 3600, (tw + tt) * scale, size * scale / 1024);
  }
  {
    couplet::synth::WorldConfig c;
    c.rows = static_cast<std::size_t>(truth_rows);
    c.cols = static_cast<std::size_t>(cols);
    c.n_days = static_cast<std::size_t>(days);
    c.lat_min = -55, c.lat_max = 70, c.lon_min = -180, c.lon_max = 180;
    const auto t0 = std::chrono::steady_clock::now();
    const couplet::synth::World world(c);
    double checksum = 0;
    for (std::size_t i = 0; i < world.n_cells(); ++i) {
      const auto w = world.weather(i, world.cell(i));
      checksum += w.Pr[0] + w.Tair.back();
    }
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cd = static_cast<double>(world.n_cells()) * days;
    std::printf("weather generator, pure code (no store), 1 thread: %zu cells x %d days in %.2f s (%.2f M cell-days/s; "
                "global %.0f s on one core; checksum %.3f)\n", world.n_cells(), days, t, cd / t / 1e6, global / cd * t,
                checksum);
  }
  fs::remove_all(dir);
  return 0;
}
