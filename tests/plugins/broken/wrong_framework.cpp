// Fixture: built (it says) against another framework release.
#include <couplet/sdk.hpp>

static void reg(couplet::Registry&) {}
extern "C" __attribute__((visibility("default"))) const couplet::PluginDescriptor* couplet_plugin_descriptor() {
  static const couplet::PluginDescriptor d{COUPLET_PLUGIN_ABI_VERSION, sizeof(couplet::PluginDescriptor),
                                           alignof(couplet::PluginDescriptor), sizeof(couplet::Registry),
                                           sizeof(couplet::NodeDecl), sizeof(couplet::Dataset), "broken_framework",
                                           "1.0", "9.9.0", "", __VERSION__, &reg};
  return &d;
}
