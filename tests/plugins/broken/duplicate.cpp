// Fixture: registers a node name that the testing plugin registers too.
#include <couplet/sdk.hpp>

COUPLET_PLUGIN("broken_duplicate", "1.0") {
  plugin.node("testing.source").summary("same name as the testing plugin's node").run([](couplet::Context&) {});
}
