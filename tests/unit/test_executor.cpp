// The executor: caching re-runs only what changed, failures keep finished work, runs are
// deterministic, and an interrupted or killed run never leaves an artifact looking complete.
#include "common.hpp"

#include <couplet/framework/executor.hpp>
#include <couplet/framework/store.hpp>
#include <couplet/framework/workflow.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

using namespace couplet;
using namespace couplet::framework;
using namespace testutil;

namespace {

const char* kChain = R"(couplet = 1
name = "chain"
seed = 1

[[node]]
id = "src"
plugin = "testing.source"
params = { n = 4, start = 1.0 }

[[node]]
id = "other"
plugin = "testing.source"
params = { n = 2, start = 10.0 }

[[node]]
id = "scale"
plugin = "testing.scale"
inputs = { data = "src.data" }
params = { factor = 2.0 }

[[node]]
id = "sum"
plugin = "testing.sum"
inputs = { a = "scale.data", b = "other.data" }
)";

RunResult run_text(const std::string& text, const fs::path& runs, const std::vector<std::string>& sets = {},
                   int jobs = 1, bool reuse = true) {
  auto ps = testing_plugins();
  fs::path file = runs / "wf.toml";
  write_file(file, text);
  Workflow wf = parse_workflow(file);
  apply_overrides(wf, sets);
  resolve(wf, ps);
  RunOptions opt;
  opt.runs_dir = runs;
  opt.jobs = jobs;
  opt.quiet = true;
  opt.reuse_cache = reuse;
  return run_workflow(wf, ps, opt);
}

double table_sum(const fs::path& file) {
  auto a = store::read_artifact(file);
  return dynamic_cast<const Table&>(*a).numbers("sum").at(0);
}

}  // namespace

TEST_CASE("a re-run after changing one parameter executes only that node and its descendants") {
  TempDir tmp("cache");
  auto r1 = run_text(kChain, tmp.path);
  REQUIRE_MESSAGE(r1.ok, r1.error);
  auto s1 = statuses(r1.run_dir);
  for (auto& [id, st] : s1) CHECK_MESSAGE(st == "executed", id);
  CHECK(table_sum(r1.run_dir / "artifacts/sum/total.h5") == doctest::Approx(2 * (1 + 2 + 3 + 4) + 21));

  auto r2 = run_text(kChain, tmp.path);
  REQUIRE(r2.ok);
  CHECK(r2.run_dir != r1.run_dir);
  for (auto& [id, st] : statuses(r2.run_dir)) CHECK_MESSAGE(st == "cached", id);

  auto r3 = run_text(kChain, tmp.path, {"scale.factor=3"});
  REQUIRE(r3.ok);
  auto s3 = statuses(r3.run_dir);
  CHECK(s3["src"] == "cached");
  CHECK(s3["other"] == "cached");
  CHECK(s3["scale"] == "executed");
  CHECK(s3["sum"] == "executed");
  CHECK(table_sum(r3.run_dir / "artifacts/sum/total.h5") == doctest::Approx(3 * 10 + 21));
  auto prov = provenance(r3.run_dir);
  CHECK(prov["status"] == "ok");
  CHECK(prov["nodes"][0]["cache_hit"] == true);
  // The run directory holds what the issue promises.
  for (auto f : {"workflow.toml", "resolved.toml", "provenance.json", "run.log", "report/sum.total.csv",
                 "report/sum.total.md", "report/README.md"})
    CHECK_MESSAGE(fs::exists(r3.run_dir / f), f);
  CHECK(read_file(r3.run_dir / "resolved.toml").find("factor = 3.0") != std::string::npos);
  CHECK(fs::exists(tmp.path / "chain" / "latest" / "provenance.json"));

  // --no-cache executes everything again, with the same results.
  auto r4 = run_text(kChain, tmp.path, {"scale.factor=3"}, 1, false);
  REQUIRE(r4.ok);
  for (auto& [id, st] : statuses(r4.run_dir)) CHECK_MESSAGE(st == "executed", id);
  CHECK(table_sum(r4.run_dir / "artifacts/sum/total.h5") == table_sum(r3.run_dir / "artifacts/sum/total.h5"));
}

TEST_CASE("independent nodes run concurrently with --jobs 2 and give the same results") {
  TempDir tmp("jobs");
  auto r = run_text(kChain, tmp.path, {}, 2);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(table_sum(r.run_dir / "artifacts/sum/total.h5") == doctest::Approx(41));
}

TEST_CASE("a failing node stops the run with node id, plugin and the error, finished artifacts stay valid") {
  TempDir tmp("fail");
  auto r = run_text(R"(couplet = 1
name = "failing"
[[node]]
id = "src"
plugin = "testing.source"
[[node]]
id = "bad"
plugin = "testing.fail"
inputs = { data = "src.data" }
[[node]]
id = "after"
plugin = "testing.scale"
inputs = { data = "bad.data" }
)",
                    tmp.path);
  CHECK_FALSE(r.ok);
  CHECK(r.error == "node 'bad' (testing.fail) failed: deliberate failure");
  auto st = statuses(r.run_dir);
  CHECK(st["src"] == "executed");
  CHECK(st["bad"] == "failed");
  CHECK(st["after"] == "not run");
  CHECK(provenance(r.run_dir)["status"] == "failed");
  CHECK(provenance(r.run_dir)["error"] == r.error);
  CHECK_NOTHROW(store::read_artifact(r.run_dir / "artifacts/src/data.h5"));
  CHECK_FALSE(fs::exists(r.run_dir / "artifacts/bad"));
  CHECK(read_file(r.run_dir / "run.log").find("deliberate failure") != std::string::npos);
}

TEST_CASE("the same seed gives bit-identical artifacts, another seed does not") {
  TempDir a("det-a"), b("det-b");
  const std::string wf = "couplet = 1\nname = \"noise\"\nseed = 5\n[[node]]\nid = \"n\"\nplugin = \"testing.noise\"\nparams = { n = 100 }\n";
  auto r1 = run_text(wf, a.path);
  auto r2 = run_text(wf, b.path);
  REQUIRE(r1.ok);
  REQUIRE(r2.ok);
  CHECK(read_file(r1.run_dir / "artifacts/n/data.h5") == read_file(r2.run_dir / "artifacts/n/data.h5"));
  auto r3 = run_text(wf, a.path, {}, 1, false);
  CHECK(read_file(r1.run_dir / "artifacts/n/data.h5") == read_file(r3.run_dir / "artifacts/n/data.h5"));
  TempDir c("det-c");
  std::string other = wf;
  other.replace(other.find("seed = 5"), 8, "seed = 6");
  auto r4 = run_text(other, c.path);
  CHECK(read_file(r1.run_dir / "artifacts/n/data.h5") != read_file(r4.run_dir / "artifacts/n/data.h5"));
}

TEST_CASE("a model's predictor comes from the plugin that registered its type") {
  TempDir tmp("model");
  auto r = run_text(R"(couplet = 1
name = "model"
[[node]]
id = "src"
plugin = "testing.source"
params = { n = 3 }
[[node]]
id = "m"
plugin = "testing.model"
params = { a = 3.0, b = 1.0 }
[[node]]
id = "apply"
plugin = "testing.apply"
inputs = { model = "m.model", data = "src.data" }
)",
                    tmp.path);
  REQUIRE_MESSAGE(r.ok, r.error);
  auto out = store::read_artifact(r.run_dir / "artifacts/apply/data.h5");
  CHECK(dynamic_cast<const Dataset&>(*out).var("x").as_double() == std::vector<double>{1, 4, 7});
}

namespace {

// Starts `couplet run` in the background; returns its pid.
pid_t spawn_run(const fs::path& wf, const fs::path& runs) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string plugin_path = good_plugins();
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execl(COUPLET_CLI, COUPLET_CLI, "--plugin-path", plugin_path.c_str(), "run", wf.c_str(), "--runs-dir",
            runs.c_str(), "--quiet", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

bool wait_for_file(const fs::path& f, double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (fs::exists(f)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// No artifact of node `id` may exist anywhere a reader would take as complete.
void check_no_complete_artifact(const fs::path& runs, const std::string& name, const std::string& id) {
  for (auto& run : fs::directory_iterator(runs / name)) {
    if (run.path().filename() == "latest") continue;
    CHECK_FALSE(fs::exists(run.path() / "artifacts" / id));
  }
  for (auto& e : fs::directory_iterator(runs / ".cache")) {
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) continue;  // temp: never read as a result
    auto meta = read_file(e.path() / "node.json");
    CHECK_MESSAGE(meta.find("\"" + id + "\"") == std::string::npos, "complete cache entry for " << id);
  }
}

std::string slow_workflow(const fs::path& signal) {
  return "couplet = 1\nname = \"slow\"\n[[node]]\nid = \"src\"\nplugin = \"testing.source\"\n"
         "[[node]]\nid = \"slow\"\nplugin = \"testing.slow\"\ninputs = { data = \"src.data\" }\n"
         "params = { seconds = 60.0, n = 1000, signal_file = \"" + signal.string() + "\" }\n";
}

}  // namespace

TEST_CASE("a run killed mid-node leaves no artifact of that node looking complete") {
  TempDir tmp("kill");
  fs::path wf = tmp.path / "slow.toml", sig = tmp.path / "started";
  write_file(wf, slow_workflow(sig));
  pid_t pid = spawn_run(wf, tmp.path / "runs");
  REQUIRE(wait_for_file(sig, 60));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  check_no_complete_artifact(tmp.path / "runs", "slow", "slow");
  // What finished before the kill is intact and reused by the next run.
  auto r = run_text(slow_workflow(sig), tmp.path / "runs", {"slow.seconds=0"});
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(statuses(r.run_dir)["src"] == "cached");
}

TEST_CASE("Ctrl-C cancels the running node: exit 130, no artifact of it, provenance says interrupted") {
  TempDir tmp("sigint");
  fs::path wf = tmp.path / "slow.toml", sig = tmp.path / "started";
  write_file(wf, slow_workflow(sig));
  pid_t pid = spawn_run(wf, tmp.path / "runs");
  REQUIRE(wait_for_file(sig, 60));
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  check_no_complete_artifact(tmp.path / "runs", "slow", "slow");
  fs::path run = fs::canonical(tmp.path / "runs/slow/latest");
  auto prov = provenance(run);
  CHECK(prov["status"] == "interrupted");
  CHECK(statuses(run)["slow"] == "cancelled");
  CHECK(statuses(run)["src"] == "executed");
  // No temporary files are left behind by an orderly stop.
  for (auto& e : fs::directory_iterator(tmp.path / "runs/.cache"))
    CHECK(e.path().filename().string().rfind(".tmp-", 0) != 0);
}

namespace {

// x(i) = i and y(i, k) = 10 i + k for i < n, k < 3 (what testing.stream writes).
double sum_x(double n) { return n * (n - 1) / 2; }
double sum_y(double n) { return 30 * sum_x(n) + 3 * n; }

const char* kStream = R"(couplet = 1
name = "stream"
[[node]]
id = "stream"
plugin = "testing.stream"
params = { n = 23, chunk = 5 }
[[node]]
id = "rows"
plugin = "testing.stream_sum"
inputs = { data = "stream.data" }
params = { chunk = 4 }
[[node]]
id = "whole"
plugin = "testing.sum"
inputs = { a = "stream.data" }
)";

double table_value(const fs::path& file, const std::string& column) {
  auto a = store::read_artifact(file);
  return dynamic_cast<const Table&>(*a).numbers(column).at(0);
}

}  // namespace

TEST_CASE("a streamed output is read back by rows and whole, on a fresh run and from the cache") {
  TempDir tmp("stream");
  auto r1 = run_text(kStream, tmp.path);
  REQUIRE_MESSAGE(r1.ok, r1.error);
  for (auto& [id, st] : statuses(r1.run_dir)) CHECK_MESSAGE(st == "executed", id);
  CHECK(table_value(r1.run_dir / "artifacts/rows/total.h5", "sum") == sum_x(23));
  CHECK(table_value(r1.run_dir / "artifacts/rows/total.h5", "sum_y") == sum_y(23));
  CHECK(table_value(r1.run_dir / "artifacts/rows/total.h5", "blocks") == 6);
  CHECK(table_sum(r1.run_dir / "artifacts/whole/total.h5") == sum_x(23));  // dataset() reads it whole
  const fs::path artifact = r1.run_dir / "artifacts/stream/data.h5";
  CHECK(store::chunking(artifact).dim == "i");
  CHECK(store::chunking(artifact).length == 23);
  auto whole = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(artifact));
  REQUIRE(whole);
  CHECK(whole->var("y").shape() == std::vector<std::size_t>{23, 3});
  CHECK(whole->attrs.at("title") == "streamed by testing.stream");

  // The producer cached, the consumer executed: rows come from the cache entry.
  auto r2 = run_text(kStream, tmp.path, {"rows.chunk=7"});
  REQUIRE_MESSAGE(r2.ok, r2.error);
  auto st = statuses(r2.run_dir);
  CHECK(st["stream"] == "cached");
  CHECK(st["whole"] == "cached");
  CHECK(st["rows"] == "executed");
  CHECK(table_value(r2.run_dir / "artifacts/rows/total.h5", "sum_y") == sum_y(23));
  CHECK(table_value(r2.run_dir / "artifacts/rows/total.h5", "blocks") == 4);

  // Blocks written last to first give the same bytes.
  auto r3 = run_text(kStream, tmp.path, {"stream.reverse=true"});
  REQUIRE_MESSAGE(r3.ok, r3.error);
  CHECK(statuses(r3.run_dir)["stream"] == "executed");
  CHECK(read_file(r3.run_dir / "artifacts/stream/data.h5") == read_file(artifact));
}

TEST_CASE("a streamed output with rows missing fails the node, naming the port and the rows") {
  TempDir tmp("stream-missing");
  auto r = run_text(kStream, tmp.path, {"stream.skip_last=true"});
  CHECK_FALSE(r.ok);
  INFO(r.error);
  CHECK(r.error.find("node 'stream' (testing.stream) failed: output 'data'") == 0);
  CHECK(r.error.find("rows [20, 23) of dimension 'i' (length 23) were never written") != std::string::npos);
  CHECK_FALSE(fs::exists(r.run_dir / "artifacts/stream"));
  for (auto& e : fs::directory_iterator(tmp.path / ".cache")) CHECK(e.path().filename().string().rfind(".tmp-", 0) != 0);
}

TEST_CASE("a run killed while a node streams leaves no artifact of it looking complete") {
  TempDir tmp("stream-kill");
  fs::path wf = tmp.path / "stream.toml", sig = tmp.path / "started";
  std::string text = kStream;
  text.replace(text.find("chunk = 5 }"), 11,
               "chunk = 5, seconds = 60.0, signal_file = \"" + sig.string() + "\" }");
  write_file(wf, text);
  pid_t pid = spawn_run(wf, tmp.path / "runs");
  REQUIRE(wait_for_file(sig, 60));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  // The first block is on disk, but only inside the node's temp entry.
  bool partial = false;
  for (auto& e : fs::recursive_directory_iterator(tmp.path / "runs/.cache"))
    if (e.path().string().find("/.tmp-") != std::string::npos && e.is_regular_file()) partial = true;
  CHECK(partial);
  check_no_complete_artifact(tmp.path / "runs", "stream", "stream");
  // The next run sweeps the dead run's temp entry and streams again.
  auto r = run_text(text, tmp.path / "runs", {"stream.seconds=0"});
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(table_value(r.run_dir / "artifacts/rows/total.h5", "sum_y") == sum_y(23));
  for (auto& e : fs::directory_iterator(tmp.path / "runs/.cache"))
    CHECK(e.path().filename().string().rfind(".tmp-", 0) != 0);
}
