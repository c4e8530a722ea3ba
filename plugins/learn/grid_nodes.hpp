// Registration of the gridded learning nodes (grid_nodes.cpp) into the learn plugin.
#pragma once

#include <couplet/node.hpp>

namespace couplet::learn::grid {
void register_grid_nodes(Registry& plugin);
}
