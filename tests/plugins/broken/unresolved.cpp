// Fixture: a plugin that needs a symbol nothing provides; loading must fail, not a later call.
#include <couplet/sdk.hpp>

extern "C" double couplet_fixture_symbol_that_does_not_exist(double);

COUPLET_PLUGIN("broken_unresolved", "1.0") {
  plugin.node("unresolved.node").summary("never loads").run([](couplet::Context&) {
    (void)couplet_fixture_symbol_that_does_not_exist(1.0);
  });
}
