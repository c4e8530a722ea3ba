// Fixture: a descriptor claiming a plugin ABI this couplet does not speak.
#include <couplet/sdk.hpp>

extern "C" __attribute__((visibility("default"))) const couplet::PluginDescriptor* couplet_plugin_descriptor() {
  static const couplet::PluginDescriptor d{999, sizeof(couplet::PluginDescriptor), alignof(couplet::PluginDescriptor),
                                           sizeof(couplet::Registry), sizeof(couplet::NodeDecl), sizeof(couplet::Dataset),
                                           "broken_abi", "1.0", COUPLET_VERSION_STRING, "", __VERSION__, nullptr};
  return &d;
}
