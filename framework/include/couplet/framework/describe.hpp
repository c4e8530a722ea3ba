// couplet framework — human-readable descriptions of node types, generated from their declarations.
#pragma once

#include <couplet/framework/plugins.hpp>

#include <string>

namespace couplet::framework {

/// Plain-text description of one node type (ports, parameters with types, defaults, bounds, units).
std::string describe_text(const NodeType& t);

/// Markdown section for one node type.
std::string describe_markdown(const NodeType& t);

/// The workflow reference: every loaded node type, grouped by plugin library (docs/reference/nodes.md).
std::string reference_markdown(const PluginSet& plugins);

}  // namespace couplet::framework
