#include <couplet/framework/describe.hpp>
#include <couplet/framework/workflow.hpp>

#include <map>
#include <sstream>

namespace couplet::framework {

namespace {

std::string default_text(const ParamDecl& p) { return p.default_value ? canonical(*p.default_value) : "(required)"; }

std::string bounds_text(const ParamDecl& p) {
  if (!p.choices.empty()) {
    std::string s;
    for (auto& c : p.choices) s += (s.empty() ? "" : " | ") + c;
    return s;
  }
  if (!p.min && !p.max) return "";
  return "[" + (p.min ? canonical(*p.min) : std::string("-inf")) + ", " +
         (p.max ? canonical(*p.max) : std::string("+inf")) + "]";
}

std::string md_cell(std::string s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
  return o;
}

}  // namespace

std::string describe_text(const NodeType& t) {
  const NodeDecl& d = *t.decl;
  std::ostringstream o;
  o << d.name << " (node version " << d.version << ", plugin " << t.plugin_name() << " " << t.plugin_version() << ")\n";
  o << "  " << d.summary << "\n";
  if (!d.doc.empty()) o << "\n" << d.doc << "\n";
  o << "\nInputs:\n";
  if (d.inputs.empty()) o << "  (none)\n";
  for (auto& p : d.inputs)
    o << "  " << p.name << " : " << to_string(p.kind) << (p.required ? "" : " (optional)") << "\n      " << p.doc << "\n";
  o << "Outputs:\n";
  if (d.outputs.empty()) o << "  (none)\n";
  for (auto& p : d.outputs) o << "  " << p.name << " : " << to_string(p.kind) << "\n      " << p.doc << "\n";
  o << "Parameters:\n";
  if (d.params.empty()) o << "  (none)\n";
  for (auto& p : d.params) {
    o << "  " << p.name << " : " << to_string(p.type) << " = " << default_text(p);
    if (auto b = bounds_text(p); !b.empty()) o << "  in " << b;
    if (!p.units.empty()) o << "  [" << p.units << "]";
    o << "\n      " << p.doc << "\n";
  }
  o << "\nLibrary: " << t.file().string() << "\n";
  return o.str();
}

std::string describe_markdown(const NodeType& t) {
  const NodeDecl& d = *t.decl;
  std::ostringstream o;
  o << "### `" << d.name << "`\n\n" << d.summary << "\n\n";
  if (!d.doc.empty()) o << d.doc << "\n\n";
  o << "Node version " << d.version << ".\n\n";
  auto ports = [&](const char* title, const std::vector<PortDecl>& v, bool inputs) {
    o << "**" << title << "**\n\n";
    if (v.empty()) { o << "none\n\n"; return; }
    o << "| port | type |" << (inputs ? " required |" : "") << " description |\n|---|---|" << (inputs ? "---|" : "") << "---|\n";
    for (auto& p : v)
      o << "| `" << p.name << "` | " << to_string(p.kind) << " |" << (inputs ? (p.required ? " yes |" : " no |") : "")
        << " " << md_cell(p.doc) << " |\n";
    o << "\n";
  };
  ports("Inputs", d.inputs, true);
  ports("Outputs", d.outputs, false);
  o << "**Parameters**\n\n";
  if (d.params.empty()) o << "none\n\n";
  else {
    o << "| name | type | default | allowed | units | description |\n|---|---|---|---|---|---|\n";
    for (auto& p : d.params)
      o << "| `" << p.name << "` | " << to_string(p.type) << " | `" << md_cell(default_text(p)) << "` | "
        << md_cell(bounds_text(p)) << " | " << md_cell(p.units) << " | " << md_cell(p.doc) << " |\n";
    o << "\n";
  }
  return o.str();
}

std::string reference_markdown(const PluginSet& plugins) {
  std::ostringstream o;
  o << "# Node reference\n\n"
    << "Generated from the node declarations by `couplet docs`; do not edit by hand.\n"
    << "Parameter types: `path` values are resolved relative to the workflow file.\n\n";
  std::map<std::string, std::vector<std::string>> by_lib;
  for (auto& name : plugins.node_names()) by_lib[plugins.find(name)->plugin_name()].push_back(name);
  for (auto& [lib, nodes] : by_lib) {
    o << "## Plugin `" << lib << "`\n\n";
    for (auto& n : nodes) o << describe_markdown(*plugins.find(n));
  }
  return o.str();
}

}  // namespace couplet::framework
