// couplet SDK — the one exported symbol of a plugin library, and the macro that defines it.
//
//   COUPLET_PLUGIN("myplugin", "1.0.0") {
//     plugin.node("myplugin.scale").summary("...").input(...).output(...).param(...).run(...);
//   }
//
// The loader reads the descriptor before calling anything else in the library, and refuses it when
// the ABI version, the descriptor's size/alignment, the framework version or the LibTorch version
// disagree with the running framework (the message names the file and both values).
#pragma once

#include <couplet/artifact.hpp>
#include <couplet/context.hpp>
#include <couplet/node.hpp>
#include <couplet/version.hpp>

#include <cstdint>

namespace couplet {

extern "C" {
/// Plain C layout on purpose: it must be readable even when everything else disagrees.
struct PluginDescriptor {
  std::uint32_t abi_version;       ///< COUPLET_PLUGIN_ABI_VERSION at build time
  std::uint32_t descriptor_size;   ///< sizeof(PluginDescriptor)
  std::uint32_t descriptor_align;  ///< alignof(PluginDescriptor)
  std::uint32_t sizeof_registry;   ///< sizeof(Registry): catches SDK layout drift
  std::uint32_t sizeof_node_decl;  ///< sizeof(NodeDecl)
  std::uint32_t sizeof_dataset;    ///< sizeof(Dataset)
  const char* plugin_name;
  const char* plugin_version;
  const char* framework_version;   ///< COUPLET_VERSION_STRING at build time
  const char* torch_version;       ///< LibTorch version built against, or "" for none
  const char* compiler;            ///< __VERSION__, for messages
  void (*register_nodes)(Registry&);
};
}

/// Name of the exported symbol.
inline constexpr const char* kDescriptorSymbol = "couplet_plugin_descriptor";

}  // namespace couplet

#ifdef COUPLET_PLUGIN_TORCH_VERSION
#define COUPLET_DETAIL_TORCH COUPLET_PLUGIN_TORCH_VERSION
#else
#define COUPLET_DETAIL_TORCH ""
#endif

#define COUPLET_PLUGIN(NAME, VERSION)                                                               \
  static void couplet_register_nodes_(::couplet::Registry& plugin);                               \
  extern "C" __attribute__((visibility("default"))) const ::couplet::PluginDescriptor*              \
  couplet_plugin_descriptor() {                                                                    \
    static const ::couplet::PluginDescriptor d{                                                    \
        COUPLET_PLUGIN_ABI_VERSION,                                                                \
        static_cast<std::uint32_t>(sizeof(::couplet::PluginDescriptor)),                           \
        static_cast<std::uint32_t>(alignof(::couplet::PluginDescriptor)),                          \
        static_cast<std::uint32_t>(sizeof(::couplet::Registry)),                                   \
        static_cast<std::uint32_t>(sizeof(::couplet::NodeDecl)),                                   \
        static_cast<std::uint32_t>(sizeof(::couplet::Dataset)),                                    \
        NAME,                                                                                      \
        VERSION,                                                                                   \
        COUPLET_VERSION_STRING,                                                                    \
        COUPLET_DETAIL_TORCH,                                                                      \
        __VERSION__,                                                                               \
        &couplet_register_nodes_};                                                                 \
    return &d;                                                                                     \
  }                                                                                                \
  static void couplet_register_nodes_(::couplet::Registry& plugin)
