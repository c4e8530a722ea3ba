// Plugin loading: the good plugin loads; each broken fixture is refused with a message naming the
// file and what mismatched.
#include "common.hpp"

#include <couplet/framework/diagnostics.hpp>

#include <doctest/doctest.h>

using namespace couplet;
using namespace couplet::framework;
using namespace testutil;

namespace {
fs::path fixture_file(const std::string& dir, const std::string& lib) {
  return fs::path(broken_plugin(dir)) / ("libcouplet_" + lib + ".so");
}
std::string refusal(const fs::path& file, PluginSet& ps) {
  try {
    ps.load_file(file);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("the testing plugin loads and declares its nodes") {
  auto ps = testing_plugins();
  CHECK(ps.refused().empty());
  REQUIRE(ps.find("testing.source") != nullptr);
  CHECK(ps.find("testing.source")->plugin_name() == "testing");
  CHECK(ps.find("testing.source")->plugin_version() == "1.0.0");
  CHECK(ps.find("nope.nothing") == nullptr);
  auto libs = ps.library_info();
  REQUIRE(libs.size() == 1);
  CHECK(libs[0].framework_version == COUPLET_VERSION_STRING);
  CHECK(libs[0].torch_version.empty());
}

TEST_CASE("a library built for another plugin ABI is refused, naming both versions") {
  PluginSet ps;
  auto f = fixture_file("wrong_abi", "broken_abi");
  auto msg = refusal(f, ps);
  CHECK(msg.find(f.string()) != std::string::npos);
  CHECK(msg.find("plugin ABI version mismatch: plugin has 999, this couplet has " + std::to_string(COUPLET_PLUGIN_ABI_VERSION)) != std::string::npos);
}

TEST_CASE("a library built against another framework release is refused") {
  PluginSet ps;
  auto f = fixture_file("wrong_framework", "broken_framework");
  auto msg = refusal(f, ps);
  CHECK(msg.find(f.string()) != std::string::npos);
  CHECK(msg.find("framework version mismatch: plugin has 9.9.0, this couplet has " COUPLET_VERSION_STRING) !=
        std::string::npos);
}

TEST_CASE("a library without a descriptor is refused") {
  PluginSet ps;
  auto f = fixture_file("no_descriptor", "broken_nodescriptor");
  auto msg = refusal(f, ps);
  CHECK(msg.find(f.string()) != std::string::npos);
  CHECK(msg.find("not a couplet plugin: it exports no 'couplet_plugin_descriptor' symbol") != std::string::npos);
}

TEST_CASE("a library with an unresolved symbol is refused at load time") {
  PluginSet ps;
  auto f = fixture_file("unresolved", "broken_unresolved");
  auto msg = refusal(f, ps);
  CHECK(msg.find(f.string()) != std::string::npos);
  CHECK(msg.find("cannot be loaded") != std::string::npos);
  CHECK(msg.find("couplet_fixture_symbol_that_does_not_exist") != std::string::npos);
}

TEST_CASE("a declaration with a default of the wrong type is refused") {
  PluginSet ps;
  auto msg = refusal(fixture_file("bad_declaration", "broken_declaration"), ps);
  CHECK(msg.find("node 'broken.declaration': parameter 'n' has a default of the wrong type (declared int)") != std::string::npos);
}

TEST_CASE("the same node name in two libraries is an error naming both files") {
  PluginSet ps;
  ps.load_directory(good_plugins());
  auto dup = fixture_file("duplicate", "broken_duplicate");
  auto msg = refusal(dup, ps);
  CHECK(msg.find("node 'testing.source' is registered twice") != std::string::npos);
  CHECK(msg.find(good_plugins()) != std::string::npos);
  CHECK(msg.find(dup.string()) != std::string::npos);
  // Also when found by a directory scan: duplicates are never silently shadowed.
  PluginSet ps2;
  ps2.load_directory(good_plugins());
  CHECK_THROWS_AS(ps2.load_directory(broken_plugin("duplicate")), PluginError);
}

TEST_CASE("directory scans skip refused libraries and record why") {
  PluginSet ps;
  ps.load_search_path({good_plugins(), broken_plugin("wrong_abi"), broken_plugin("unresolved"), "/nonexistent"});
  CHECK(ps.find("testing.source") != nullptr);
  REQUIRE(ps.refused().size() == 2);
  CHECK(ps.refused()[0].reason.find("ABI") != std::string::npos);
}

TEST_CASE("earlier search directories shadow later ones with the same file name") {
  TempDir tmp("shadow");
  fs::copy_file(fs::path(good_plugins()) / "libcouplet_testing.so", tmp.path / "libcouplet_testing.so");
  PluginSet ps;
  ps.load_search_path({tmp.path, good_plugins()});
  CHECK(ps.refused().empty());
  CHECK(ps.find("testing.source")->file().parent_path() == tmp.path);
}

TEST_CASE("plugin file names") {
  CHECK(is_plugin_file_name("libcouplet_tem_wbm.so"));
  CHECK_FALSE(is_plugin_file_name("libcouplet_.so"));
  CHECK_FALSE(is_plugin_file_name("libtorch.so"));
  CHECK_FALSE(is_plugin_file_name("libcouplet_x.so.txt"));
}
