// couplet — the command line: run, validate, graph, plugins, describe, docs.
#include <couplet/framework/describe.hpp>
#include <couplet/framework/diagnostics.hpp>
#include <couplet/framework/executor.hpp>
#include <couplet/framework/graph.hpp>
#include <couplet/framework/plugins.hpp>
#include <couplet/framework/store.hpp>
#include <couplet/framework/workflow.hpp>

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace fw = couplet::framework;
namespace fs = std::filesystem;

namespace {

// Exit codes, documented in docs/user-guide.md.
constexpr int kOk = 0, kRunFailed = 1, kInvalid = 2, kPluginProblem = 3, kInterrupted = 130;

std::atomic<bool> g_interrupt{false};

extern "C" void on_signal(int) {
  // First Ctrl-C: stop starting nodes and ask running ones to cancel. Second: leave now (every write
  // is temp + rename, so nothing half-written is left looking complete).
  if (g_interrupt.exchange(true)) std::_Exit(kInterrupted);
  const char msg[] = "\ninterrupt: cancelling (press Ctrl-C again to quit at once)\n";
  (void)!::write(2, msg, sizeof msg - 1);
}

struct Common {
  std::vector<std::string> plugin_paths;
  std::vector<std::string> sets;
  std::string workflow;
};

fw::PluginSet load_plugins(const Common& c, const std::vector<fs::path>& workflow_paths) {
  std::vector<fs::path> cli(c.plugin_paths.begin(), c.plugin_paths.end());
  fw::PluginSet ps;
  ps.load_search_path(fw::plugin_search_path(cli, workflow_paths));
  return ps;
}

void print_refused(const fw::PluginSet& ps) {
  for (auto& r : ps.refused()) std::cerr << "warning: plugin refused: " << r.reason << "\n";
}

// Parse, override, load plugins, resolve. Throws ValidationError / PluginError.
std::pair<fw::Workflow, fw::PluginSet> prepare(const Common& c) {
  fw::Workflow wf = fw::parse_workflow(c.workflow);
  fw::apply_overrides(wf, c.sets);
  fw::PluginSet ps = load_plugins(c, wf.plugin_paths);
  print_refused(ps);
  fw::resolve(wf, ps);
  return {std::move(wf), std::move(ps)};
}

int report(const std::exception& e) {
  if (dynamic_cast<const fw::ValidationError*>(&e)) {
    std::cerr << e.what() << "\n";
    return kInvalid;
  }
  if (dynamic_cast<const fw::PluginError*>(&e)) {
    std::cerr << "error: " << e.what() << "\n";
    return kPluginProblem;
  }
  std::cerr << "error: " << e.what() << "\n";
  return kRunFailed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"couplet — couple process-based and machine-learning models in declared workflows"};
  app.set_version_flag("--version", std::string("couplet ") + COUPLET_VERSION_STRING);
  app.require_subcommand(1);
  app.fallthrough();  // global options (--plugin-path) may also follow the subcommand
  Common c;
  app.add_option("--plugin-path", c.plugin_paths,
                 "Directory to search for plugin libraries first (repeatable); then COUPLET_PLUGIN_PATH, the "
                 "workflow's [plugins] paths, and the built-in directory");

  // run
  auto* run = app.add_subcommand("run", "Validate and run a workflow; results go to <runs-dir>/<name>/<timestamp>/");
  run->add_option("workflow", c.workflow, "Workflow file (TOML)")->required()->check(CLI::ExistingFile);
  run->add_option("--set", c.sets, "Override a parameter: node.param=value (TOML value syntax; repeatable)");
  int jobs = 1, threads = 0;
  std::string runs_dir = "runs";
  bool no_cache = false, quiet = false;
  run->add_option("-j,--jobs", jobs, "Nodes run at once")->check(CLI::Range(1, 256))->capture_default_str();
  run->add_option("-t,--threads", threads, "Threads per node, LibTorch intra-op included (default: cores / jobs)")
      ->check(CLI::Range(1, 1024));
  run->add_option("--runs-dir", runs_dir, "Where run directories and the cache live")->capture_default_str();
  run->add_flag("--no-cache", no_cache, "Execute every node even when a cached result exists");
  run->add_flag("-q,--quiet", quiet, "Print only warnings and errors");

  auto* validate = app.add_subcommand("validate", "Check a workflow without running anything");
  validate->add_option("workflow", c.workflow, "Workflow file (TOML)")->required()->check(CLI::ExistingFile);
  validate->add_option("--set", c.sets, "Override a parameter: node.param=value");

  auto* graph = app.add_subcommand("graph", "Print the workflow's graph in Graphviz DOT");
  graph->add_option("workflow", c.workflow, "Workflow file (TOML)")->required()->check(CLI::ExistingFile);
  graph->add_option("--set", c.sets, "Override a parameter: node.param=value");

  auto* plugins = app.add_subcommand("plugins", "List plugin libraries, their node types, and refused libraries");

  auto* describe = app.add_subcommand("describe", "Describe a node type: ports and parameters");
  std::string node_name;
  bool markdown = false;
  describe->add_option("node", node_name, "Node type, e.g. io.uscrn")->required();
  describe->add_flag("--markdown", markdown, "Markdown instead of plain text");

  auto* docs = app.add_subcommand("docs", "Write the node reference (Markdown) generated from the declarations");
  std::string docs_out;
  docs->add_option("-o,--out", docs_out, "Output file (default: standard output)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage mistake exits 2, like an invalid workflow.
    return app.exit(e) == 0 ? kOk : kInvalid;
  }

  try {
    if (*run) {
      // Threads are fixed before any plugin (and so LibTorch/OpenBLAS) is loaded: OpenBLAS's own
      // pool would otherwise oversubscribe the cores LibTorch's intra-op threads use.
      unsigned hw = std::max(1u, std::thread::hardware_concurrency());
      if (threads == 0) threads = std::max(1, static_cast<int>(hw) / jobs);
      ::setenv("OPENBLAS_NUM_THREADS", "1", 0);
      ::setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 0);
      auto [wf, ps] = prepare(c);
      ps.configure_threads(threads);
      fw::RunOptions opt;
      opt.runs_dir = runs_dir;
      opt.jobs = jobs;
      opt.threads = threads;
      opt.reuse_cache = !no_cache;
      opt.quiet = quiet;
      opt.progress_tty = ::isatty(2);
      opt.interrupt = &g_interrupt;
      opt.command_line.assign(argv, argv + argc);
      std::signal(SIGINT, on_signal);
      std::signal(SIGTERM, on_signal);
      auto result = fw::run_workflow(wf, ps, opt);
      if (result.interrupted) return kInterrupted;
      if (!result.ok) return kRunFailed;  // the run's log already printed the error
      std::cout << result.run_dir.string() << "\n";
      return kOk;
    }
    if (*validate) {
      auto [wf, ps] = prepare(c);
      std::cout << c.workflow << ": ok (" << wf.nodes.size() << " nodes)\n";
      return kOk;
    }
    if (*graph) {
      auto [wf, ps] = prepare(c);
      std::cout << fw::to_dot(wf);
      return kOk;
    }
    fw::PluginSet ps = load_plugins(c, {});
    if (*plugins) {
      for (auto& lib : ps.library_info()) {
        std::cout << lib.name << " " << lib.version << "  " << lib.file.string();
        if (!lib.torch_version.empty()) std::cout << "  (LibTorch " << lib.torch_version << ")";
        std::cout << "\n";
        for (auto& n : lib.nodes) std::cout << "    " << n << "  — " << ps.find(n)->decl->summary << "\n";
      }
      for (auto& r : ps.refused()) std::cout << "refused: " << r.reason << "\n";  // reason starts with the file
      return ps.refused().empty() ? kOk : kPluginProblem;
    }
    if (*describe) {
      const fw::NodeType* t = ps.find(node_name);
      if (!t) {
        std::cerr << "error: unknown node type '" << node_name << "'" << fw::suggest(node_name, ps.node_names()) << "\n";
        return kInvalid;
      }
      std::cout << (markdown ? fw::describe_markdown(*t) : fw::describe_text(*t));
      return kOk;
    }
    if (*docs) {
      std::string md = fw::reference_markdown(ps);
      if (docs_out.empty()) std::cout << md;
      else {
        couplet::store::write_text_atomic(docs_out, md);
      }
      return kOk;
    }
  } catch (const std::exception& e) {
    return report(e);
  }
  return kOk;
}
