#include <couplet/framework/executor.hpp>
#include <couplet/framework/report_svg.hpp>
#include <couplet/framework/graph.hpp>
#include <couplet/framework/hash.hpp>
#include <couplet/framework/store.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace couplet::framework {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const char* to_string(NodeStatus s) {
  switch (s) {
    case NodeStatus::NotRun: return "not run";
    case NodeStatus::Executed: return "executed";
    case NodeStatus::Cached: return "cached";
    case NodeStatus::Failed: return "failed";
    case NodeStatus::Cancelled: return "cancelled";
  }
  return "?";
}

const NodeResult* RunResult::node(const std::string& id) const {
  for (auto& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

std::vector<std::string> cache_keys(const Workflow& wf) {
  std::vector<std::string> keys(wf.nodes.size());
  for (int i : topological_order(wf)) {
    const NodeSpec& n = wf.nodes[i];
    Hasher h;
    h.add("couplet-node-key-1").add(n.plugin).add(n.type->decl->version).add(n.type->plugin_version());
    for (auto& [name, p] : n.params) {
      h.add(name).add(canonical(p.value));
      const ParamDecl* d = n.type->decl->find_param(name);
      if (d && d->type == ParamType::Path) h.add(path_fingerprint(std::get<std::string>(p.value)));
    }
    h.add(std::to_string(n.seed));
    for (auto& [port, ref] : n.inputs) h.add(port).add(keys[wf.index_of(ref.node)]).add(ref.port);
    keys[i] = h.hex();
  }
  return keys;
}

namespace {

std::string timestamp_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string iso_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void link_or_copy(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  fs::remove(to, ec);
  fs::create_hard_link(from, to, ec);
  if (ec) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// Removes temporary cache entries left by runs that were killed (their process is gone).
void sweep_stale_temps(const fs::path& cache_dir) {
  std::error_code ec;
  for (auto& e : fs::directory_iterator(cache_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".tmp-", 0) != 0) continue;
    auto dash = name.find('-', 5);
    if (dash == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atoll(name.substr(dash + 1).c_str()));
    if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;  // still running
    fs::remove_all(e.path(), ec);
  }
}

class ProgressBoard {
 public:
  ProgressBoard(bool tty, std::shared_ptr<spdlog::logger> log) : tty_(tty), log_(std::move(log)) {}
  void report(const std::string& id, double done, double total, const std::string& note) {
    if (!(total > 0)) return;
    const int pct = static_cast<int>(100.0 * std::min(1.0, std::max(0.0, done / total)));
    std::lock_guard<std::mutex> lk(mu_);
    if (tty_) {
      auto now = Clock::now();
      if (pct < 100 && now - last_draw_ < std::chrono::milliseconds(100)) return;
      last_draw_ = now;
      std::fprintf(stderr, "\r\033[K[%s] %3d%% %s", id.c_str(), pct, note.c_str());
      std::fflush(stderr);
      drawn_ = true;
    } else {
      int& last = last_pct_[id];
      if (pct / 10 == last / 10 && !(pct == 100 && last != 100)) return;
      last = pct;
      log_->info("[{}] {}% {}", id, pct, note);
    }
  }
  void clear() {
    std::lock_guard<std::mutex> lk(mu_);
    if (tty_ && drawn_) std::fprintf(stderr, "\r\033[K"), drawn_ = false;
  }

 private:
  bool tty_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mu_;
  Clock::time_point last_draw_{};
  bool drawn_ = false;
  std::map<std::string, int> last_pct_;
};

// A streamed output: rows go straight into the node's temp cache entry; the port counts as produced
// once the file is complete.
class StreamWriter final : public ChunkedWriter {
 public:
  StreamWriter(std::string port, const fs::path& file, const ChunkedLayout& layout, std::function<void()> published)
      : port_(std::move(port)), file_(file, layout), published_(std::move(published)) {}
  void write(std::size_t begin, const Dataset& rows) override {
    guard([&] { file_.write_rows(begin, rows); });
  }
  void close() override {
    guard([&] { file_.close(); });
    published_();
  }

 private:
  template <class F> void guard(F f) {
    try {
      f();
    } catch (const std::exception& e) {
      throw NodeError("output '" + port_ + "': " + e.what());
    }
  }
  std::string port_;
  store::ChunkedDatasetFile file_;
  std::function<void()> published_;
};

// What a node reads: an input port's artifact whole (loaded on first use), or the producer's stored
// file (checksum verified) for reading by rows.
struct InputSource {
  std::function<std::shared_ptr<const Artifact>(const std::string& port)> load;
  std::function<fs::path(const std::string& port)> file;
};

class NodeContext final : public Context {
 public:
  NodeContext(const NodeSpec& spec, const PluginSet& plugins, InputSource in, fs::path out_dir, int threads,
              std::shared_ptr<spdlog::logger> log, ProgressBoard& board, fs::path scratch,
              std::function<bool()> cancelled)
      : spec_(spec), plugins_(plugins), in_(std::move(in)), out_dir_(std::move(out_dir)), threads_(threads),
        log_(std::move(log)), board_(board), scratch_(std::move(scratch)), cancelled_(std::move(cancelled)),
        rng_(spec.seed) {}

  const std::string& node_id() const override { return spec_.id; }
  const NodeDecl& decl() const override { return *spec_.type->decl; }
  const ParamValue& param_value(const std::string& name) const override {
    auto it = spec_.params.find(name);
    if (it == spec_.params.end()) throw NodeError("node reads parameter '" + name + "', which it does not declare");
    return it->second.value;
  }
  bool has_input(const std::string& port) const override { return spec_.inputs.count(port) != 0; }
  std::shared_ptr<const Artifact> input_artifact(const std::string& port) const override {
    if (!connected(port)) return nullptr;
    std::lock_guard<std::mutex> lk(in_mu_);
    auto& a = loaded_[port];
    if (!a) a = in_.load(port);
    return a;
  }
  Chunking input_chunking(const std::string& port) const override {
    if (!connected(port)) return {};
    std::lock_guard<std::mutex> lk(in_mu_);
    auto it = chunking_.find(port);
    if (it == chunking_.end()) it = chunking_.emplace(port, store::chunking(in_.file(port))).first;
    return it->second;
  }
  std::shared_ptr<const Dataset> input_rows(const std::string& port, std::size_t begin, std::size_t count) const override {
    if (!connected(port)) throw NodeError("input '" + port + "' is not connected");
    if (!input_chunking(port).streamed())
      throw NodeError("input '" + port + "' was written whole, not streamed: read it with dataset()");
    try {
      return store::read_rows(in_.file(port), begin, count);
    } catch (const std::exception& e) {
      throw NodeError("input '" + port + "': " + e.what());
    }
  }
  std::shared_ptr<const Dataset> input_header(const std::string& port) const override {
    if (!connected(port)) throw NodeError("input '" + port + "' is not connected");
    if (!input_chunking(port).streamed())
      throw NodeError("input '" + port + "' was written whole, not streamed: read it with dataset()");
    try {
      return store::read_header(in_.file(port));
    } catch (const std::exception& e) {
      throw NodeError("input '" + port + "': " + e.what());
    }
  }
  void set_output(const std::string& port, std::shared_ptr<const Artifact> a) override {
    const PortDecl& p = output_decl(port);
    if (!a) throw NodeError("node writes a null artifact to output '" + port + "'");
    if (a->kind() != p.kind)
      throw NodeError("output '" + port + "' is declared " + to_string(p.kind) + " but the node wrote a " +
                      to_string(a->kind()));
    claim(port);
    std::lock_guard<std::mutex> lk(out_mu_);
    outputs_[port] = keep_alive(std::move(a), spec_.type->plugin);
  }
  std::unique_ptr<ChunkedWriter> chunked_output(const std::string& port, const ChunkedLayout& layout) override {
    const PortDecl& p = output_decl(port);
    if (p.kind != ArtifactKind::Dataset)
      throw NodeError("output '" + port + "' is declared " + to_string(p.kind) + "; only a Dataset can be streamed");
    std::unique_ptr<ChunkedWriter> writer;
    try {
      writer = std::make_unique<StreamWriter>(port, out_dir_ / (port + ".h5"), layout, [this, port] {
        std::lock_guard<std::mutex> lk(out_mu_);
        streamed_.insert(port);
      });
    } catch (const std::exception& e) {
      throw NodeError("output '" + port + "': " + e.what());
    }
    claim(port);
    return writer;
  }
  std::shared_ptr<Predictor> predictor(const Model& m) const override {
    auto p = plugins_.predictor(m);
    if (!p) throw NodeError("no loaded plugin can predict with a model of type '" + m.type + "'");
    return p;
  }
  std::shared_ptr<Surrogate> surrogate(const Model& m) const override {
    auto p = plugins_.surrogate(m);
    if (!p) throw NodeError("no loaded plugin provides a surrogate for a model of type '" + m.type + "'");
    return p;
  }
  std::shared_ptr<void> loss_term_object(const Model& m) const override {
    auto p = plugins_.loss_term(m);
    if (!p)
      throw NodeError("a model of type '" + m.type + "' is not a LossTerm (no loaded plugin registers one for it)");
    return p;
  }
  std::uint64_t seed() const override { return spec_.seed; }
  std::mt19937_64& rng() override { return rng_; }
  int threads() const override { return threads_; }
  void log(LogLevel level, const std::string& m) override {
    switch (level) {
      case LogLevel::Debug: log_->debug("[{}] {}", spec_.id, m); break;
      case LogLevel::Info: log_->info("[{}] {}", spec_.id, m); break;
      case LogLevel::Warn: log_->warn("[{}] {}", spec_.id, m); break;
      case LogLevel::Error: log_->error("[{}] {}", spec_.id, m); break;
    }
  }
  void progress(double done, double total, const std::string& note) override {
    board_.report(spec_.id, done, total, note);
  }
  fs::path scratch_dir() override {
    fs::create_directories(scratch_);
    return scratch_;
  }
  bool cancelled() const override { return cancelled_(); }

  /// Outputs handed over whole (streamed ones are already files in the output directory).
  std::map<std::string, std::shared_ptr<const Artifact>>& outputs() { return outputs_; }
  bool produced(const std::string& port) {
    std::lock_guard<std::mutex> lk(out_mu_);
    return outputs_.count(port) || streamed_.count(port);
  }

 private:
  bool connected(const std::string& port) const {
    if (spec_.inputs.count(port)) return true;
    if (!decl().find_input(port)) throw NodeError("node reads input '" + port + "', which it does not declare");
    return false;
  }
  const PortDecl& output_decl(const std::string& port) const {
    const PortDecl* p = decl().find_output(port);
    if (!p) throw NodeError("node writes output '" + port + "', which it does not declare");
    return *p;
  }
  // Each output is set or streamed once.
  void claim(const std::string& port) {
    std::lock_guard<std::mutex> lk(out_mu_);
    if (!claimed_.insert(port).second) throw NodeError("node writes output '" + port + "' twice");
  }

  const NodeSpec& spec_;
  const PluginSet& plugins_;
  InputSource in_;
  mutable std::mutex in_mu_;
  mutable std::map<std::string, std::shared_ptr<const Artifact>> loaded_;
  mutable std::map<std::string, Chunking> chunking_;
  fs::path out_dir_;
  std::mutex out_mu_;
  std::set<std::string> claimed_, streamed_;
  std::map<std::string, std::shared_ptr<const Artifact>> outputs_;
  int threads_;
  std::shared_ptr<spdlog::logger> log_;
  ProgressBoard& board_;
  fs::path scratch_;
  std::function<bool()> cancelled_;
  std::mt19937_64 rng_;
};

class Run {
 public:
  Run(const Workflow& wf, const PluginSet& plugins, const RunOptions& opt)
      : wf_(wf), plugins_(plugins), opt_(opt), n_(wf.nodes.size()), keys_(cache_keys(wf)), up_(upstream(wf)),
        mem_(n_), results_(n_), consumers_left_(n_, 0), cached_(n_, 0) {
    for (std::size_t i = 0; i < n_; ++i) {
      results_[i].id = wf.nodes[i].id;
      results_[i].plugin = wf.nodes[i].plugin;
      results_[i].cache_key = keys_[i];
      for (int u : up_[i]) consumers_left_[u]++;
    }
  }

  RunResult execute() {
    make_run_dir();
    const auto t0 = Clock::now();
    started_ = iso_now();
    log_->info("run {} -> {}", wf_.name, run_dir_.string());
    log_->info("{} nodes, {} job(s), {} thread(s) per node", n_, opt_.jobs, opt_.threads);

    // Nodes whose whole cone is cached are never loaded: only executed nodes pull inputs. A node without
    // outputs exists for its effect outside the run (e.g. writing a file): a cache hit would skip it.
    for (std::size_t i = 0; i < n_; ++i)
      if (opt_.reuse_cache && !wf_.nodes[i].type->decl->outputs.empty() && fs::is_directory(cache_dir_ / keys_[i]))
        cached_[i] = true;

    std::vector<int> state(n_, 0);  // 0 waiting, 1 running, 2 done
    std::vector<std::thread> pool;
    std::deque<int> ready;
    std::size_t finished = 0;
    auto is_ready = [&](std::size_t i) {
      for (int u : up_[i])
        if (state[u] != 2 || (results_[u].status != NodeStatus::Executed && results_[u].status != NodeStatus::Cached))
          return false;
      return true;
    };
    auto worker = [&] {
      std::unique_lock<std::mutex> lk(mu_);
      for (;;) {
        // Timed wait: Ctrl-C only sets a flag, nobody notifies.
        while (ready.empty() && finished < n_ && !stopping()) cv_.wait_for(lk, std::chrono::milliseconds(100));
        if (stopping()) ready.clear();
        if (ready.empty()) return;  // finished, or stopping: running nodes end in their own workers
        int i = ready.front();
        ready.pop_front();
        lk.unlock();
        run_node(i);
        lk.lock();
        state[i] = 2;
        ++finished;
        release_inputs(i);
        if (!stopping())
          for (std::size_t j = 0; j < n_; ++j)
            if (state[j] == 0 && is_ready(j)) state[j] = 1, ready.push_back(static_cast<int>(j));
        cv_.notify_all();
      }
    };
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (int i : topological_order(wf_))
        if (up_[i].empty()) state[i] = 1, ready.push_back(i);
    }
    for (int j = 0; j < std::max(1, opt_.jobs); ++j) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    board_->clear();

    RunResult r;
    r.run_dir = run_dir_;
    r.nodes = results_;
    r.interrupted = interrupted();
    r.error = first_error_;
    r.ok = first_error_.empty() && !r.interrupted;
    for (auto& n : r.nodes) r.ok = r.ok && (n.status == NodeStatus::Executed || n.status == NodeStatus::Cached);
    if (r.ok) write_report_index();
    write_provenance(r, std::chrono::duration<double>(Clock::now() - t0).count());
    if (r.ok) log_->info("run finished: {}", run_dir_.string());
    else if (r.interrupted) log_->warn("run interrupted; finished nodes are kept in {}", run_dir_.string());
    else log_->error("run failed: {}", r.error);
    std::error_code ec;
    fs::remove_all(run_dir_ / "scratch", ec);
    log_->flush();
    spdlog::drop(log_->name());
    return r;
  }

 private:
  bool interrupted() const { return opt_.interrupt && opt_.interrupt->load(); }
  bool stopping() const { return interrupted() || failed_.load(); }

  void make_run_dir() {
    fs::path base = opt_.runs_dir / wf_.name;
    std::string stamp = timestamp_now();
    fs::create_directories(base);
    run_dir_ = base / stamp;
    for (int k = 2; !fs::create_directory(run_dir_); ++k) run_dir_ = base / (stamp + "-" + std::to_string(k));
    cache_dir_ = opt_.runs_dir / ".cache";
    fs::create_directories(cache_dir_);
    sweep_stale_temps(cache_dir_);

    auto file_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>((run_dir_ / "run.log").string(), true);
    file_sink->set_level(spdlog::level::debug);
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    console->set_level(opt_.quiet ? spdlog::level::warn : spdlog::level::info);
    console->set_pattern("%^%l%$: %v");
    static std::atomic<int> counter{0};
    log_ = std::make_shared<spdlog::logger>("couplet-run-" + std::to_string(counter++),
                                            spdlog::sinks_init_list{file_sink, console});
    log_->set_level(spdlog::level::debug);
    board_ = std::make_unique<ProgressBoard>(opt_.progress_tty && !opt_.quiet, log_);

    store::write_text_atomic(run_dir_ / "workflow.toml", wf_.text);
    store::write_text_atomic(run_dir_ / "resolved.toml", resolved_toml(wf_));
    // A stable pointer to the newest run (replaced atomically).
    fs::path latest = base / "latest", tmp = base / (".latest-" + std::to_string(::getpid()));
    std::error_code ec;
    fs::remove(tmp, ec);
    fs::create_directory_symlink(run_dir_.filename(), tmp, ec);
    if (!ec) fs::rename(tmp, latest, ec);
  }

  // Loads a cached node's outputs when an executed node needs them.
  std::shared_ptr<const Artifact> artifact(int node, const std::string& port) {
    std::lock_guard<std::mutex> lk(mem_mu_);
    auto& m = mem_[node];
    auto it = m.find(port);
    if (it != m.end()) return it->second;
    const fs::path entry = cache_dir_ / keys_[node];
    try {
      auto a = store::read_artifact(entry / (port + ".h5"));
      m[port] = a;
      return a;
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()) + " (a cached output of node '" + wf_.nodes[node].id +
                               "'; delete " + entry.string() + " or run with --no-cache)");
    }
  }

  void release_inputs(int i) {
    // Called with mu_ held. Drop a producer's artifacts from memory once its last consumer ran.
    std::lock_guard<std::mutex> lk(mem_mu_);
    for (int u : up_[i])
      if (--consumers_left_[u] == 0) mem_[u].clear();
    if (consumers_left_[i] == 0) mem_[i].clear();
  }

  void run_node(int i) {
    const NodeSpec& spec = wf_.nodes[i];
    NodeResult& res = results_[i];
    const auto t0 = Clock::now();
    const fs::path entry = cache_dir_ / keys_[i];
    if (cached_[i]) {
      try {
        link_outputs(i, entry);
        res.status = NodeStatus::Cached;
        log_->info("[{}] cached ({})", spec.id, keys_[i].substr(0, 12));
        return;
      } catch (const std::exception& e) {
        log_->warn("[{}] cache entry unusable ({}); executing", spec.id, e.what());
      }
    }
    if (stopping()) {
      res.status = NodeStatus::Cancelled;
      return;
    }
    log_->info("[{}] running {}", spec.id, spec.plugin);
    // Outputs are written into a private temp directory, renamed into the cache when the node is done:
    // an entry exists complete or not at all, whatever happens to the process meanwhile.
    static std::atomic<int> counter{0};
    const fs::path tmp = cache_dir_ / (".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                                       keys_[i].substr(0, 12));
    struct RemoveOnExit {
      const fs::path& dir;
      ~RemoveOnExit() {
        std::error_code ec;
        fs::remove_all(dir, ec);  // nothing left after a success (renamed), the partial outputs otherwise
      }
    } remove_tmp{tmp};
    try {
      fs::create_directories(tmp);
      InputSource in{[this, &spec](const std::string& port) {
                       const InputRef& ref = spec.inputs.at(port);
                       return artifact(wf_.index_of(ref.node), ref.port);
                     },
                     [this, &spec](const std::string& port) {
                       const InputRef& ref = spec.inputs.at(port);
                       return verified_file(wf_.index_of(ref.node), ref.port);
                     }};
      NodeContext ctx(spec, plugins_, std::move(in), tmp, opt_.threads, log_, *board_, run_dir_ / "scratch" / spec.id,
                      [this] { return interrupted(); });
      spec.type->decl->run(ctx);
      for (auto& out : spec.type->decl->outputs)
        if (!ctx.produced(out.name))
          throw NodeError("the node finished without producing its output '" + out.name + "'");
      store_outputs(i, ctx.outputs(), tmp, entry);
      {
        std::lock_guard<std::mutex> lk(mem_mu_);
        mem_[i] = ctx.outputs();
      }
      link_outputs(i, entry);
      res.status = NodeStatus::Executed;
      res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      log_->info("[{}] done in {:.2f} s", spec.id, res.seconds);
    } catch (const Cancelled&) {
      res.status = NodeStatus::Cancelled;
      res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      log_->warn("[{}] cancelled", spec.id);
    } catch (const std::exception& e) {
      fail(res, "node '" + spec.id + "' (" + spec.plugin + ") failed: " + e.what(), t0);
    } catch (...) {
      fail(res, "node '" + spec.id + "' (" + spec.plugin + ") failed with an unknown exception", t0);
    }
  }

  void fail(NodeResult& res, const std::string& msg, Clock::time_point t0) {
    res.status = NodeStatus::Failed;
    res.error = msg;
    res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    log_->debug("{}", msg);  // the run's summary line reports the first failure once
    std::lock_guard<std::mutex> lk(mu_);
    if (first_error_.empty()) first_error_ = msg;
    failed_ = true;
  }

  // Adds the whole outputs to the node's temp directory (streamed ones are there already), then renames
  // it into place as the cache entry.
  void store_outputs(int i, const std::map<std::string, std::shared_ptr<const Artifact>>& outs, const fs::path& tmp,
                     const fs::path& entry) {
    for (auto& [port, a] : outs) store::write_artifact(*a, tmp / (port + ".h5"));
    nlohmann::json meta = {{"node", wf_.nodes[i].id}, {"plugin", wf_.nodes[i].plugin}, {"key", keys_[i]}};
    store::write_text_atomic(tmp / "node.json", meta.dump(2));
    std::error_code ec;
    fs::remove_all(entry, ec);  // a stale entry from --no-cache
    fs::rename(tmp, entry);
    std::lock_guard<std::mutex> lk(mem_mu_);
    for (auto& out : wf_.nodes[i].type->decl->outputs) verified_.insert(entry / (out.name + ".h5"));  // written just now
  }

  // A producer's stored output, for reading by rows; its checksum is checked once per run (it reads the
  // whole file, which reading by rows must not do on every block).
  fs::path verified_file(int node, const std::string& port) {
    const fs::path file = cache_dir_ / keys_[node] / (port + ".h5");
    {
      std::lock_guard<std::mutex> lk(mem_mu_);
      if (verified_.count(file)) return file;
    }
    try {
      store::verify_artifact(file);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()) + " (a cached output of node '" + wf_.nodes[node].id + "'; delete " +
                               file.parent_path().string() + " or run with --no-cache)");
    }
    std::lock_guard<std::mutex> lk(mem_mu_);
    verified_.insert(file);
    return file;
  }

  void link_outputs(int i, const fs::path& entry) {
    const NodeSpec& spec = wf_.nodes[i];
    for (auto& out : spec.type->decl->outputs) {
      fs::path src = entry / (out.name + ".h5");
      if (!fs::exists(src)) throw std::runtime_error("missing " + src.string());
      fs::path dst = run_dir_ / "artifacts" / spec.id / (out.name + ".h5");
      link_or_copy(src, dst);
      results_[i].outputs[out.name] = dst;
      if (out.kind == ArtifactKind::Table) {
        auto a = artifact(i, out.name);
        fs::path report = run_dir_ / "report";
        fs::create_directories(report);
        const auto& t = static_cast<const Table&>(*a);
        store::write_table_csv(t, report / (spec.id + "." + out.name + ".csv"));
        store::write_table_markdown(t, report / (spec.id + "." + out.name + ".md"));
      } else if (out.kind == ArtifactKind::Dataset) {
        // Only the attributes are read to decide: most Dataset outputs are never loaded here (streamed
        // forcing of a global run), the maps are small.
        if (!wants_maps(dst)) continue;
        auto a = artifact(i, out.name);
        const auto& ds = static_cast<const Dataset&>(*a);
        if (!reports_maps(ds)) continue;
        fs::path report = run_dir_ / "report";
        fs::create_directories(report);
        const auto lat = ds.var("lat").as_double(), lon = ds.var("lon").as_double();
        std::vector<std::string> drawn;
        for (auto& v : ds.variables())
          if (report::is_map(v)) {
            store::write_text_atomic(report / (spec.id + "." + out.name + "." + v.name() + ".svg"),
                                     report::map_svg(v, lat, lon, spec.id + "." + out.name + ": " + v.attr("long_name", v.name()),
                                                     v.attr("colormap") == "diverging"));
            drawn.push_back(v.name());
          }
        std::lock_guard<std::mutex> lk(mem_mu_);
        maps_[i][out.name] = std::move(drawn);  // listed by write_report_index
      }
    }
  }

  static bool wants_maps(const fs::path& file) {
    const auto a = store::read_global_attributes(file);
    auto it = a.find("couplet:report");
    return it != a.end() && it->second == "maps";
  }
  /// A Dataset output whose producer asks for maps (attribute couplet:report = maps) and has lat/lon.
  static bool reports_maps(const Dataset& ds) {
    auto it = ds.attrs.find("couplet:report");
    return it != ds.attrs.end() && it->second == "maps" && ds.has("lat") && ds.has("lon");
  }

  void write_report_index() {
    std::string md = "# " + wf_.name + "\n\n";
    if (!wf_.description.empty()) md += wf_.description + "\n\n";
    bool any = false;
    for (std::size_t i = 0; i < n_; ++i)
      for (auto& out : wf_.nodes[i].type->decl->outputs)
        if (out.kind == ArtifactKind::Table) {
          auto a = artifact(static_cast<int>(i), out.name);
          const auto& t = static_cast<const Table&>(*a);
          // A long table (e.g. one row per grid cell) shows its head here; its .csv and .md hold it all.
          constexpr std::size_t kIndexRows = 50;
          const std::string stem = wf_.nodes[i].id + "." + out.name;
          md += "## " + stem + "\n\n" + out.doc + "\n\n" + store::table_to_markdown(t, kIndexRows);
          if (t.rows() > kIndexRows)
            md += "\nThe first " + std::to_string(kIndexRows) + " of " + std::to_string(t.rows()) + " rows; all in [" + stem +
                  ".csv](" + stem + ".csv).\n";
          md += "\n";
          any = true;
        }
    for (std::size_t i = 0; i < n_; ++i)
      for (auto& out : wf_.nodes[i].type->decl->outputs) {
        auto node = maps_.find(static_cast<int>(i));
        if (node == maps_.end() || !node->second.count(out.name)) continue;
        const std::string stem = wf_.nodes[i].id + "." + out.name;
        md += "## " + stem + " (maps)\n\n" + out.doc + "\n\n";
        for (const auto& name : node->second.at(out.name)) md += "![" + name + "](" + stem + "." + name + ".svg)\n";
        md += "\n";
        any = true;
      }
    if (!any) return;
    fs::create_directories(run_dir_ / "report");
    store::write_text_atomic(run_dir_ / "report" / "README.md", md);
  }

  void write_provenance(const RunResult& r, double seconds) {
    using nlohmann::json;
    json j;
    j["couplet_version"] = COUPLET_VERSION_STRING;
    j["workflow"] = {{"name", wf_.name}, {"file", fs::absolute(wf_.file).string()}, {"seed", wf_.seed}};
    j["command_line"] = opt_.command_line;
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    j["host"] = host;
    j["started"] = started_;
    j["finished"] = iso_now();
    j["seconds"] = seconds;
    j["status"] = r.ok ? "ok" : (r.interrupted ? "interrupted" : "failed");
    if (!r.error.empty()) j["error"] = r.error;
    auto env = [](const char* k) { const char* v = std::getenv(k); return std::string(v ? v : ""); };
    j["threads"] = {{"jobs", opt_.jobs},
                    {"threads_per_node", opt_.threads},
                    {"OMP_NUM_THREADS", env("OMP_NUM_THREADS")},
                    {"OPENBLAS_NUM_THREADS", env("OPENBLAS_NUM_THREADS")}};
    json libs = json::array();
    for (auto& lib : plugins_.library_info())
      libs.push_back({{"file", lib.file.string()}, {"name", lib.name}, {"version", lib.version},
                      {"framework_version", lib.framework_version}, {"torch_version", lib.torch_version}});
    j["plugins"] = libs;
    json nodes = json::array();
    for (std::size_t i = 0; i < n_; ++i) {
      const auto& res = r.nodes[i];
      const auto& spec = wf_.nodes[i];
      json outs = json::object();
      for (auto& [p, f] : res.outputs) outs[p] = fs::relative(f, run_dir_).string();
      json n = {{"id", res.id},
                {"plugin", res.plugin},
                {"plugin_version", spec.type->plugin_version()},
                {"node_version", spec.type->decl->version},
                {"library", spec.type->file().string()},
                {"status", to_string(res.status)},
                {"cache_hit", res.status == NodeStatus::Cached},
                {"cache_key", res.cache_key},
                {"seed", spec.seed},
                {"seconds", res.seconds},
                {"outputs", outs}};
      if (!res.error.empty()) n["error"] = res.error;
      if (!spec.doc.empty()) n["doc"] = spec.doc;
      nodes.push_back(n);
    }
    j["nodes"] = nodes;
    store::write_text_atomic(run_dir_ / "provenance.json", j.dump(2) + "\n");
  }

  const Workflow& wf_;
  const PluginSet& plugins_;
  const RunOptions& opt_;
  std::size_t n_;
  std::vector<std::string> keys_;
  std::vector<std::vector<int>> up_;
  std::vector<std::map<std::string, std::shared_ptr<const Artifact>>> mem_;
  std::vector<NodeResult> results_;
  std::vector<int> consumers_left_;
  std::vector<char> cached_;
  std::set<fs::path> verified_;  // cache files whose checksum was checked in this run
  fs::path run_dir_, cache_dir_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<ProgressBoard> board_;
  std::mutex mu_, mem_mu_;
  /// Per node and Dataset output: the variables drawn as SVG maps into the report (link_outputs).
  std::map<int, std::map<std::string, std::vector<std::string>>> maps_;
  std::condition_variable cv_;
  std::atomic<bool> failed_{false};
  std::string first_error_;
  std::string started_;
};

}  // namespace

RunResult run_workflow(const Workflow& wf, const PluginSet& plugins, const RunOptions& opt) {
  Run run(wf, plugins, opt);
  return run.execute();
}

}  // namespace couplet::framework
