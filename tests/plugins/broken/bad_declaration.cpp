// Fixture: a declaration the framework cannot validate against (default of the wrong type).
#include <couplet/sdk.hpp>

COUPLET_PLUGIN("broken_declaration", "1.0") {
  auto p = couplet::param_int("n", 3, "an integer");
  p.default_value = std::string("three");
  plugin.node("broken.declaration").summary("bad default").param(p).run([](couplet::Context&) {});
}
