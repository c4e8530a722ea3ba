// The command line: validate prints each fixture's message; run refuses bad workflows without
// running any node; plugins/describe/graph/docs work.
#include "common.hpp"

#include <doctest/doctest.h>

using namespace testutil;

namespace {
std::string with_plugins() { return cli() + " --plugin-path " + good_plugins(); }
}  // namespace

TEST_CASE("couplet validate and run on every bad fixture: the expected message, non-zero, nothing run") {
  TempDir tmp("cli-bad");
  int count = 0;
  for (auto& e : fs::directory_iterator(fs::path(COUPLET_SOURCE_DIR) / "tests/fixtures/bad_workflows")) {
    if (e.path().extension() != ".toml") continue;
    ++count;
    CAPTURE(e.path().filename().string());
    std::istringstream in(read_file(e.path()));
    std::string line, expect;
    std::getline(in, line);
    REQUIRE(line.rfind("# expect: ", 0) == 0);
    expect = line.substr(10);
    auto v = run(with_plugins() + " validate " + e.path().string());
    CHECK(v.code == 2);
    CHECK_MESSAGE(v.text.find(expect) != std::string::npos, v.text);
    CHECK(v.text.find(e.path().string() + ":") != std::string::npos);
    fs::path runs = tmp.path / e.path().stem();
    auto r = run(with_plugins() + " run " + e.path().string() + " --runs-dir " + runs.string());
    CHECK(r.code == 2);
    CHECK_MESSAGE(r.text.find(expect) != std::string::npos, r.text);
    CHECK_FALSE(fs::exists(runs));  // not a single node ran, not even a run directory was made
  }
  CHECK(count >= 20);
}

TEST_CASE("couplet validate accepts a good workflow, graph prints DOT") {
  TempDir tmp("cli-good");
  write_file(tmp.path / "wf.toml",
             "couplet = 1\n[[node]]\nid = \"src\"\nplugin = \"testing.source\"\n"
             "[[node]]\nid = \"s\"\nplugin = \"testing.scale\"\ninputs = { data = \"src.data\" }\n");
  auto v = run(with_plugins() + " validate " + (tmp.path / "wf.toml").string());
  CHECK(v.code == 0);
  CHECK(v.text.find("ok (2 nodes)") != std::string::npos);
  auto g = run(with_plugins() + " graph " + (tmp.path / "wf.toml").string());
  CHECK(g.code == 0);
  CHECK(g.text.find("\"src\" -> \"s\"") != std::string::npos);
  auto r = run(with_plugins() + " run -q " + (tmp.path / "wf.toml").string() + " --runs-dir " +
               (tmp.path / "runs").string());
  CHECK(r.code == 0);
  CHECK(fs::exists(tmp.path / "runs/wf/latest/artifacts/s/data.h5"));
}

TEST_CASE("couplet run exits 1 with node and plugin named when a node fails") {
  TempDir tmp("cli-fail");
  write_file(tmp.path / "wf.toml",
             "couplet = 1\n[[node]]\nid = \"src\"\nplugin = \"testing.source\"\n"
             "[[node]]\nid = \"boom\"\nplugin = \"testing.fail\"\ninputs = { data = \"src.data\" }\n"
             "params = { message = \"disk on fire\" }\n");
  auto r = run(with_plugins() + " run -q " + (tmp.path / "wf.toml").string() + " --runs-dir " +
               (tmp.path / "runs").string());
  CHECK(r.code == 1);
  CHECK(r.text.find("node 'boom' (testing.fail) failed: disk on fire") != std::string::npos);
}

TEST_CASE("couplet plugins, describe and docs") {
  auto p = run(with_plugins() + " plugins");
  CHECK(p.code == 0);
  CHECK(p.text.find("testing.source") != std::string::npos);
  auto d = run(with_plugins() + " describe testing.params");
  CHECK(d.code == 0);
  CHECK(d.text.find("rate : float = 0.5  in [0.0, 1.0]  [1/d]") != std::string::npos);
  CHECK(d.text.find("needed : string = (required)") != std::string::npos);
  auto u = run(with_plugins() + " describe testing.sorce");
  CHECK(u.code == 2);
  CHECK(u.text.find("did you mean 'testing.source'?") != std::string::npos);
  auto m = run(with_plugins() + " docs");
  CHECK(m.code == 0);
  CHECK(m.text.find("### `testing.scale`") != std::string::npos);
  auto bad = run(cli() + " --plugin-path " + broken_plugin("wrong_abi") + " --plugin-path " + good_plugins() + " plugins");
  CHECK(bad.code == 3);
  CHECK(bad.text.find("refused:") != std::string::npos);
  auto usage = run(cli() + " run --jobs zero x.toml");
  CHECK(usage.code == 2);
  auto after = run(cli() + " plugins --plugin-path " + good_plugins());  // global options may follow
  CHECK(after.code == 0);
  CHECK(after.text.find("testing.source") != std::string::npos);
  auto help = run(cli() + " run --help");
  CHECK(help.code == 0);
  CHECK(help.text.find("--jobs") != std::string::npos);
}

TEST_CASE("docs/reference/nodes.md is what `couplet docs` generates from the built plugins") {
  // The reference docs come from the node declarations; this keeps the committed copy honest.
  auto m = run(cli() + " docs");
  REQUIRE(m.code == 0);
  const std::string committed = read_file(fs::path(COUPLET_SOURCE_DIR) / "docs/reference/nodes.md");
  CHECK_MESSAGE(m.text == committed,
                "docs/reference/nodes.md is stale: regenerate it with `build/release/framework/couplet docs -o "
                "docs/reference/nodes.md`");
}

TEST_CASE("plugins are found through COUPLET_PLUGIN_PATH and through the workflow's [plugins] paths") {
  TempDir tmp("cli-search");
  const std::string body = "[[node]]\nid = \"src\"\nplugin = \"testing.source\"\n";
  write_file(tmp.path / "plain.toml", "couplet = 1\n" + body);
  // Without the testing plugin on any search path, the node type is unknown.
  auto none = run(cli() + " validate " + (tmp.path / "plain.toml").string());
  CHECK(none.code == 2);
  CHECK(none.text.find("unknown plugin 'testing.source'") != std::string::npos);
  auto env = run("COUPLET_PLUGIN_PATH=/nonexistent:" + good_plugins() + " " + cli() + " validate " +
                 (tmp.path / "plain.toml").string());
  CHECK_MESSAGE(env.code == 0, env.text);
  // [plugins] paths are relative to the workflow file.
  fs::create_directories(tmp.path / "wf");
  fs::copy(good_plugins(), tmp.path / "myplugins");
  write_file(tmp.path / "wf/local.toml", "couplet = 1\n[plugins]\npaths = [\"../myplugins\"]\n" + body);
  auto local = run(cli() + " validate " + (tmp.path / "wf/local.toml").string());
  CHECK_MESSAGE(local.code == 0, local.text);
}
