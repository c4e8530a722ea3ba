#include <couplet/framework/graph.hpp>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/depth_first_search.hpp>
#include <boost/graph/topological_sort.hpp>

#include <algorithm>
#include <sstream>

namespace couplet::framework {

namespace {

using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
using Vertex = boost::graph_traits<Graph>::vertex_descriptor;

Graph build(const Workflow& wf) {
  Graph g(wf.nodes.size());
  auto up = upstream(wf);
  for (std::size_t v = 0; v < up.size(); ++v)
    for (int u : up[v]) {
      // Separate statements: add_edge's argument evaluation order is unspecified.
      Vertex from = boost::vertex(static_cast<std::size_t>(u), g);
      Vertex to = boost::vertex(v, g);
      boost::add_edge(from, to, g);
    }
  return g;
}

// Records DFS tree parents and the first back edge, from which the cycle is read off.
struct CycleFinder : boost::default_dfs_visitor {
  std::vector<Vertex>* parent;
  std::pair<Vertex, Vertex>* back;
  bool* found;
  void tree_edge(boost::graph_traits<Graph>::edge_descriptor e, const Graph& g) const {
    (*parent)[boost::target(e, g)] = boost::source(e, g);
  }
  void back_edge(boost::graph_traits<Graph>::edge_descriptor e, const Graph& g) const {
    if (!*found) *back = {boost::source(e, g), boost::target(e, g)}, *found = true;
  }
};

}  // namespace

std::vector<std::vector<int>> upstream(const Workflow& wf) {
  std::vector<std::vector<int>> up(wf.nodes.size());
  for (std::size_t v = 0; v < wf.nodes.size(); ++v) {
    for (auto& [port, ref] : wf.nodes[v].inputs) {
      int u = wf.index_of(ref.node);
      if (u >= 0 && std::find(up[v].begin(), up[v].end(), u) == up[v].end()) up[v].push_back(u);
    }
    std::sort(up[v].begin(), up[v].end());
  }
  return up;
}

void check_acyclic(const Workflow& wf) {
  Graph g = build(wf);
  std::vector<Vertex> parent(boost::num_vertices(g));
  for (std::size_t i = 0; i < parent.size(); ++i) parent[i] = i;
  std::pair<Vertex, Vertex> back{};
  bool found = false;
  CycleFinder vis;
  vis.parent = &parent;
  vis.back = &back;
  vis.found = &found;
  boost::depth_first_search(g, boost::visitor(vis));
  if (!found) return;
  // back = (u → v) with v an ancestor of u: the cycle is v → … → u → v.
  std::vector<Vertex> path{back.first};
  for (Vertex x = back.first; x != back.second; x = parent[x]) path.push_back(parent[x]);
  std::reverse(path.begin(), path.end());
  std::string ids;
  for (Vertex x : path) ids += wf.nodes[x].id + " -> ";
  ids += wf.nodes[back.second].id;
  const auto& at = wf.nodes[back.second];
  throw ValidationError({{at.pos, "the workflow has a cycle: " + ids}});
}

std::vector<int> topological_order(const Workflow& wf) {
  Graph g = build(wf);
  std::vector<Vertex> rev;
  boost::topological_sort(g, std::back_inserter(rev));  // throws not_a_dag; check_acyclic runs first
  return std::vector<int>(rev.rbegin(), rev.rend());
}

std::string to_dot(const Workflow& wf) {
  auto esc = [](const std::string& s) {
    std::string o;
    for (char c : s) o += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return o;
  };
  std::ostringstream o;
  o << "digraph \"" << esc(wf.name) << "\" {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n";
  for (auto& n : wf.nodes)
    o << "  \"" << esc(n.id) << "\" [label=\"" << esc(n.id) << "\\n" << esc(n.plugin) << "\""
      << (n.doc.empty() ? "" : ", tooltip=\"" + esc(n.doc) + "\"") << "];\n";
  for (auto& n : wf.nodes)
    for (auto& [port, ref] : n.inputs)
      o << "  \"" << esc(ref.node) << "\" -> \"" << esc(n.id) << "\" [label=\"" << esc(ref.port) << " → " << esc(port)
        << "\"];\n";
  o << "}\n";
  return o.str();
}

}  // namespace couplet::framework
