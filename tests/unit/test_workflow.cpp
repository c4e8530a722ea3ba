// Workflow parsing and validation: every bad fixture gives its expected message with file:line:col.
#include "common.hpp"

#include <couplet/framework/graph.hpp>
#include <couplet/framework/hash.hpp>
#include <couplet/framework/workflow.hpp>

#include <doctest/doctest.h>

using namespace couplet;
using namespace couplet::framework;
using namespace testutil;

namespace {

std::vector<std::string> expectations(const fs::path& fixture) {
  std::vector<std::string> v;
  std::istringstream in(read_file(fixture));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("# expect: ", 0) == 0) v.push_back(line.substr(10));
  return v;
}

std::vector<fs::path> bad_fixtures() {
  std::vector<fs::path> v;
  for (auto& e : fs::directory_iterator(fs::path(COUPLET_SOURCE_DIR) / "tests/fixtures/bad_workflows"))
    if (e.path().extension() == ".toml") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

Workflow resolved(const std::string& text, const PluginSet& ps) {
  Workflow wf = parse_workflow_text(text, "inline.toml", fs::current_path());
  resolve(wf, ps);
  return wf;
}

}  // namespace

TEST_CASE("every bad workflow fixture is rejected with its expected message and a position") {
  auto ps = testing_plugins();
  auto fixtures = bad_fixtures();
  REQUIRE(fixtures.size() >= 20);
  for (auto& f : fixtures) {
    CAPTURE(f.filename().string());
    auto expected = expectations(f);
    REQUIRE_FALSE(expected.empty());
    std::string message;
    try {
      Workflow wf = parse_workflow(f);
      resolve(wf, ps);
    } catch (const ValidationError& e) {
      message = e.what();
      for (auto& d : e.diagnostics()) {
        CHECK(d.pos.file == f.string());
        CHECK(d.pos.line > 0);
        CHECK(d.pos.column > 0);
      }
    }
    for (auto& x : expected) CHECK_MESSAGE(message.find(x) != std::string::npos, "got: " << message);
    // The message starts with file:line:col.
    CHECK(message.rfind(f.string() + ":", 0) == 0);
  }
}

TEST_CASE("positions point at the offending key or value") {
  auto ps = testing_plugins();
  const std::string dir = std::string(COUPLET_SOURCE_DIR) + "/tests/fixtures/bad_workflows/";
  auto first_pos = [&](const std::string& name) {
    try {
      Workflow wf = parse_workflow(dir + name);
      resolve(wf, ps);
    } catch (const ValidationError& e) {
      return std::make_pair(e.diagnostics().at(0).pos.line, e.diagnostics().at(0).pos.column);
    }
    return std::make_pair(0, 0);
  };
  CHECK(first_pos("unknown_key.toml") == std::make_pair(3, 1));       // seeed = 3
  CHECK(first_pos("unknown_plugin.toml") == std::make_pair(6, 10));   // "testing.sorce"
  CHECK(first_pos("unknown_param.toml").first == 7);                  // params line
  CHECK(first_pos("out_of_bounds.toml").first == 7);
}

TEST_CASE("all problems are reported at once, not only the first") {
  auto ps = testing_plugins();
  try {
    resolved(R"(couplet = 1
[[node]]
id = "p"
plugin = "testing.params"
params = { count = 0, rate = 2.0, mode = "x" }
)",
             ps);
    FAIL("expected a ValidationError");
  } catch (const ValidationError& e) {
    CHECK(e.diagnostics().size() == 4);  // count, rate, mode, missing 'needed'
  }
}

TEST_CASE("defaults are filled in, ints widen to floats, paths resolve against the workflow file") {
  auto ps = testing_plugins();
  Workflow wf = parse_workflow_text(R"(couplet = 1
name = "ok"
seed = 7
[[node]]
id = "p"
plugin = "testing.params"
params = { needed = "yes", rate = 1, where = "data/x", weights = [] }
)",
                                    "/some/dir/wf.toml", "/some/dir");
  resolve(wf, ps);
  auto& p = wf.nodes[0].params;
  CHECK(std::get<double>(p.at("rate").value) == 1.0);
  CHECK(std::get<std::int64_t>(p.at("count").value) == 3);
  CHECK(p.at("count").is_default);
  CHECK(std::get<std::string>(p.at("where").value) == "/some/dir/data/x");
  CHECK(std::get<std::vector<double>>(p.at("weights").value).empty());
  CHECK(wf.nodes[0].seed != 0);
  // The resolved workflow parses again and says the same.
  std::string text = resolved_toml(wf);
  CHECK(text.find("count = 3  # default") != std::string::npos);
  CHECK(std::get<std::string>(p.at("needed").value) == "yes");
  Workflow again = parse_workflow_text(text, "/some/dir/wf.toml", "/some/dir");
  resolve(again, ps);
  CHECK(canonical(again.nodes[0].params.at("rate").value) == "1.0");
}

TEST_CASE("TOML dates are accepted for string and date parameters, dates are normalised") {
  auto ps = testing_plugins();
  Workflow wf = resolved("couplet = 1\n[[node]]\nid = \"p\"\nplugin = \"testing.params\"\n"
                         "params = { needed = 2016-01-31, day = \"20200229\" }\n", ps);
  CHECK(std::get<std::string>(wf.nodes[0].params.at("needed").value) == "2016-01-31");
  CHECK(std::get<std::string>(wf.nodes[0].params.at("day").value) == "2020-02-29");
}

TEST_CASE("--set overrides are validated like the file") {
  auto ps = testing_plugins();
  const std::string text = "couplet = 1\n[[node]]\nid = \"p\"\nplugin = \"testing.params\"\nparams = { needed = \"a\" }\n";
  {
    Workflow wf = parse_workflow_text(text, "w.toml", ".");
    apply_overrides(wf, {"p.count=7", "p.mode=slow"});
    resolve(wf, ps);
    CHECK(std::get<std::int64_t>(wf.nodes[0].params.at("count").value) == 7);
    CHECK(std::get<std::string>(wf.nodes[0].params.at("mode").value) == "slow");  // bare word → string
  }
  {
    Workflow wf = parse_workflow_text(text, "w.toml", ".");
    apply_overrides(wf, {"p.count=70"});
    CHECK_THROWS_WITH_AS(resolve(wf, ps), doctest::Contains("--set p.count=70: error: parameter 'count' of node 'p' (testing.params) value 70 is outside its bounds [1.0, 10.0]"), ValidationError);
  }
  {
    Workflow wf = parse_workflow_text(text, "w.toml", ".");
    CHECK_THROWS_WITH_AS(apply_overrides(wf, {"q.count=1"}), doctest::Contains("no node 'q' in the workflow (valid: p)"), ValidationError);
    CHECK_THROWS_WITH_AS(apply_overrides(wf, {"count=1"}), doctest::Contains("expected node.param=value"), ValidationError);
  }
  {
    Workflow wf = parse_workflow_text(text, "w.toml", ".");
    apply_overrides(wf, {"p.cont=1"});
    CHECK_THROWS_WITH_AS(resolve(wf, ps), doctest::Contains("unknown parameter 'cont' for node 'p' (testing.params); did you mean 'count'?"), ValidationError);
  }
}

TEST_CASE("graph: topological order, DOT, and a cycle names its nodes") {
  auto ps = testing_plugins();
  Workflow wf = resolved(R"(couplet = 1
[[node]]
id = "sum"
plugin = "testing.sum"
inputs = { a = "scale.data", b = "src.data" }
[[node]]
id = "scale"
plugin = "testing.scale"
inputs = { data = "src.data" }
[[node]]
id = "src"
plugin = "testing.source"
)",
                         ps);
  auto order = topological_order(wf);
  auto pos = [&](int i) { return std::find(order.begin(), order.end(), i) - order.begin(); };
  CHECK(pos(2) < pos(1));
  CHECK(pos(1) < pos(0));
  std::string dot = to_dot(wf);
  CHECK(dot.find("\"src\" -> \"scale\" [label=\"data → data\"]") != std::string::npos);
  CHECK(dot.rfind("digraph", 0) == 0);
}

TEST_CASE("seeds are derived per node and stable") {
  CHECK(derive_seed(42, "a") == derive_seed(42, "a"));
  CHECK(derive_seed(42, "a") != derive_seed(42, "b"));
  CHECK(derive_seed(42, "a") != derive_seed(43, "a"));
}

TEST_CASE("suggestions: close names are offered, far ones list the valid names") {
  CHECK(suggest("hiden", {"hidden", "dropout"}) == "; did you mean 'hidden'?");
  CHECK(suggest("zzzzzz", {"a", "b"}) == " (valid: a, b)");
  CHECK(edit_distance("kitten", "sitting") == 3);
}
