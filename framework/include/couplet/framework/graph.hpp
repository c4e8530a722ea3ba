// couplet framework — the workflow as a graph (Boost.Graph): cycle check, order, Graphviz output.
#pragma once

#include <couplet/framework/workflow.hpp>

#include <string>
#include <vector>

namespace couplet::framework {

/// Throws ValidationError naming the node ids of a cycle ("a -> b -> c -> a").
void check_acyclic(const Workflow& wf);

/// Node indices in an order where every producer comes before its consumers (deterministic for a file).
std::vector<int> topological_order(const Workflow& wf);

/// For each node, the indices of the nodes it reads from (deduplicated).
std::vector<std::vector<int>> upstream(const Workflow& wf);

/// Graphviz DOT text: nodes labelled "id\nplugin", edges labelled "out → in".
std::string to_dot(const Workflow& wf);

}  // namespace couplet::framework
