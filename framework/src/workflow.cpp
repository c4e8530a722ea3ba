#include <couplet/framework/graph.hpp>
#include <couplet/framework/hash.hpp>
#include <couplet/framework/plugins.hpp>
#include <couplet/framework/workflow.hpp>

#include <couplet/time.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace couplet::framework {

namespace fs = std::filesystem;

int Workflow::index_of(const std::string& id) const {
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].id == id) return static_cast<int>(i);
  return -1;
}

namespace {

const std::vector<std::string> kTopKeys = {"couplet", "name", "description", "seed", "plugins", "node"};
const std::vector<std::string> kNodeKeys = {"id", "plugin", "inputs", "params", "doc"};
const std::vector<std::string> kPluginsKeys = {"paths"};

SourcePos pos_of(const std::string& file, const toml::source_region& r) {
  return SourcePos{file, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

const char* toml_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

bool valid_id(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

std::string date_text(const toml::date& d) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", int(d.year), int(d.month), int(d.day));
  return buf;
}

// A TOML value as written, before it is checked against the declared type. Returns false (with the
// reason in `why`) for values no parameter can take.
bool to_param_value(const toml::node& n, ParamValue& out, std::string& why) {
  if (auto v = n.as_boolean()) { out = v->get(); return true; }
  if (auto v = n.as_integer()) { out = static_cast<std::int64_t>(v->get()); return true; }
  if (auto v = n.as_floating_point()) { out = v->get(); return true; }
  if (auto v = n.as_string()) { out = v->get(); return true; }
  if (auto v = n.as_date()) { out = date_text(v->get()); return true; }  // start = 2016-01-01 reads as a date
  if (auto arr = n.as_array()) {
    std::vector<double> nums;
    std::vector<std::string> strs;
    for (auto& e : *arr) {
      if (auto i = e.as_integer()) nums.push_back(static_cast<double>(i->get()));
      else if (auto f = e.as_floating_point()) nums.push_back(f->get());
      else if (auto s = e.as_string()) strs.push_back(s->get());
      else if (auto d = e.as_date()) strs.push_back(date_text(d->get()));
      else { why = std::string("array items must be numbers or strings, found ") + toml_type_name(e); return false; }
    }
    if (!nums.empty() && !strs.empty()) { why = "array mixes numbers and strings"; return false; }
    if (!strs.empty()) out = strs;
    else out = nums;  // an empty array is given a type when checked against the declaration
    return true;
  }
  why = std::string("expected a value, found ") + toml_type_name(n);
  return false;
}


void check_keys(const toml::table& t, const std::vector<std::string>& allowed, const std::string& file,
                const std::string& where, std::vector<Diagnostic>& diags) {
  for (auto&& [k, v] : t) {
    std::string key(k.str());
    bool ok = false;
    for (auto& a : allowed) ok = ok || a == key;
    if (!ok)
      diags.push_back({pos_of(file, k.source()), "unknown key '" + key + "' " + where + suggest(key, allowed)});
  }
}

}  // namespace

Workflow parse_workflow_text(const std::string& text, const std::string& display_name, const fs::path& base_dir) {
  Workflow wf;
  wf.file = display_name;
  wf.text = text;
  const std::string& file = display_name;
  toml::table root;
  try {
    root = toml::parse(text, std::string_view{display_name});
  } catch (const toml::parse_error& e) {
    throw ValidationError({{pos_of(file, e.source()), "TOML syntax: " + std::string(e.description())}});
  }
  std::vector<Diagnostic> diags;
  SourcePos top{file, 1, 1};
  check_keys(root, kTopKeys, file, "at the top level", diags);

  if (auto n = root.get("couplet")) {
    auto v = n->as_integer();
    if (!v) diags.push_back({pos_of(file, n->source()), "'couplet' (the schema version) must be an integer"});
    else if (v->get() != kWorkflowSchema)
      diags.push_back({pos_of(file, n->source()), "schema version " + std::to_string(v->get()) +
                                                      " is not supported; this couplet reads couplet = " +
                                                      std::to_string(kWorkflowSchema)});
    else wf.schema = kWorkflowSchema;
  } else {
    diags.push_back({top, "missing the schema version: add 'couplet = " + std::to_string(kWorkflowSchema) +
                              "' as the first line"});
  }
  if (auto n = root.get("name")) {
    if (auto s = n->as_string(); s && valid_id(s->get())) wf.name = s->get();
    else diags.push_back({pos_of(file, n->source()), "'name' must be a string of letters, digits, '_' or '-'"});
  } else {
    wf.name = fs::path(display_name).stem().string();
  }
  if (auto n = root.get("description")) {
    if (auto s = n->as_string()) wf.description = s->get();
    else diags.push_back({pos_of(file, n->source()), "'description' must be a string"});
  }
  if (auto n = root.get("seed")) {
    auto v = n->as_integer();
    if (!v || v->get() < 0) diags.push_back({pos_of(file, n->source()), "'seed' must be a non-negative integer"});
    else wf.seed = static_cast<std::uint64_t>(v->get());
  }
  if (auto n = root.get("plugins")) {
    if (auto t = n->as_table()) {
      check_keys(*t, kPluginsKeys, file, "in [plugins]", diags);
      if (auto p = t->get("paths")) {
        auto arr = p->as_array();
        if (!arr) diags.push_back({pos_of(file, p->source()), "[plugins] paths must be an array of strings"});
        else
          for (auto& e : *arr) {
            if (auto s = e.as_string()) wf.plugin_paths.push_back((base_dir / s->get()).lexically_normal());
            else diags.push_back({pos_of(file, e.source()), "[plugins] paths must hold strings"});
          }
      }
    } else {
      diags.push_back({pos_of(file, n->source()), "'plugins' must be a table: [plugins]"});
    }
  }

  auto nodes = root.get("node");
  if (!nodes) {
    diags.push_back({top, "the workflow has no nodes: add [[node]] tables with id and plugin"});
  } else if (!nodes->is_array_of_tables()) {
    diags.push_back({pos_of(file, nodes->source()), "'node' must be an array of tables: write [[node]]"});
  } else {
    std::map<std::string, SourcePos> ids;
    for (auto& elem : *nodes->as_array()) {
      auto& t = *elem.as_table();
      NodeSpec spec;
      spec.pos = pos_of(file, t.source());
      check_keys(t, kNodeKeys, file, "in [[node]]", diags);
      if (auto n = t.get("id")) {
        auto s = n->as_string();
        spec.pos = pos_of(file, n->source());
        if (!s || !valid_id(s->get()))
          diags.push_back({spec.pos, "node 'id' must be a string of letters, digits, '_' or '-' (starting with a letter or '_')"});
        else {
          spec.id = s->get();
          auto [it, fresh] = ids.emplace(spec.id, spec.pos);
          if (!fresh) diags.push_back({spec.pos, "node id '" + spec.id + "' is used twice (first at " + it->second.str() + ")"});
        }
      } else {
        diags.push_back({spec.pos, "[[node]] has no 'id'"});
      }
      if (auto n = t.get("plugin")) {
        spec.plugin_pos = pos_of(file, n->source());
        if (auto s = n->as_string()) spec.plugin = s->get();
        else diags.push_back({spec.plugin_pos, "'plugin' must be a string naming a node type, e.g. \"tem_wbm.simulate\""});
      } else {
        diags.push_back({spec.pos, "node '" + spec.id + "' has no 'plugin'"});
      }
      if (auto n = t.get("doc")) {
        if (auto s = n->as_string()) spec.doc = s->get();
        else diags.push_back({pos_of(file, n->source()), "node 'doc' must be a string"});
      }
      if (auto n = t.get("inputs")) {
        if (auto it = n->as_table()) {
          for (auto&& [k, v] : *it) {
            InputRef ref;
            ref.pos = pos_of(file, v.source());
            auto s = v.as_string();
            std::string text = s ? s->get() : "";
            auto dot = text.find('.');
            if (!s || dot == std::string::npos || dot == 0 || dot + 1 == text.size()) {
              diags.push_back({ref.pos, "input '" + std::string(k.str()) + "' of node '" + spec.id +
                                            "' must be a string \"node.port\""});
              continue;
            }
            ref.node = text.substr(0, dot);
            ref.port = text.substr(dot + 1);
            spec.inputs[std::string(k.str())] = ref;
          }
        } else {
          diags.push_back({pos_of(file, n->source()), "'inputs' must be a table: inputs = { port = \"node.port\" }"});
        }
      }
      if (auto n = t.get("params")) {
        if (auto pt = n->as_table()) {
          for (auto&& [k, v] : *pt) {
            ParamSetting ps;
            ps.pos = pos_of(file, v.source());
            std::string why;
            if (!to_param_value(v, ps.value, why)) {
              diags.push_back({ps.pos, "parameter '" + std::string(k.str()) + "' of node '" + spec.id + "': " + why});
              continue;
            }
            spec.params[std::string(k.str())] = ps;
          }
        } else {
          diags.push_back({pos_of(file, n->source()), "'params' must be a table: params = { name = value }"});
        }
      }
      wf.nodes.push_back(std::move(spec));
    }
  }
  if (!diags.empty()) throw ValidationError(std::move(diags));
  return wf;
}

Workflow parse_workflow(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ValidationError({{SourcePos{file.string()}, "cannot open the workflow file"}});
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_workflow_text(ss.str(), file.string(), fs::absolute(file).parent_path());
}

void apply_overrides(Workflow& wf, const std::vector<std::string>& sets) {
  std::vector<Diagnostic> diags;
  std::vector<std::string> ids;
  for (auto& n : wf.nodes) ids.push_back(n.id);
  for (auto& s : sets) {
    SourcePos pos{"--set " + s};
    auto eq = s.find('=');
    auto dot = s.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 || dot + 1 == eq) {
      diags.push_back({pos, "expected node.param=value"});
      continue;
    }
    std::string id = s.substr(0, dot), name = s.substr(dot + 1, eq - dot - 1), text = s.substr(eq + 1);
    int idx = wf.index_of(id);
    if (idx < 0) {
      diags.push_back({pos, "no node '" + id + "' in the workflow" + suggest(id, ids)});
      continue;
    }
    ParamSetting ps;
    ps.pos = pos;
    try {
      auto t = toml::parse("v = " + text);
      std::string why;
      if (!to_param_value(*t.get("v"), ps.value, why)) {
        diags.push_back({pos, why});
        continue;
      }
    } catch (const toml::parse_error&) {
      ps.value = text;  // a bare word: the common case of a string written without quotes
    }
    wf.nodes[idx].params[name] = ps;
  }
  if (!diags.empty()) throw ValidationError(std::move(diags));
}

namespace {

std::string describe_value(const ParamValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) return "a boolean";
        else if constexpr (std::is_same_v<T, std::int64_t>) return "an integer";
        else if constexpr (std::is_same_v<T, double>) return "a float";
        else if constexpr (std::is_same_v<T, std::string>) return "a string";
        else if constexpr (std::is_same_v<T, std::vector<double>>) return "a list of numbers";
        else return "a list of strings";
      },
      v);
}

std::string bounds_text(const ParamDecl& d) {
  std::ostringstream s;
  s << "[" << (d.min ? canonical(*d.min) : "-inf") << ", " << (d.max ? canonical(*d.max) : "+inf") << "]";
  return s.str();
}

}  // namespace

std::string check_param_value(const ParamDecl& d, ParamValue& v, const fs::path& base_dir) {
  auto wrong = [&] { return "expects " + std::string(d.type == ParamType::Int ? "an integer" : "a " + std::string(to_string(d.type))) +
                            ", got " + describe_value(v); };
  auto in_bounds = [&](double x) { return !(d.min && x < *d.min) && !(d.max && x > *d.max) && std::isfinite(x); };
  switch (d.type) {
    case ParamType::Bool:
      if (!std::holds_alternative<bool>(v)) return wrong();
      return "";
    case ParamType::Int: {
      auto p = std::get_if<std::int64_t>(&v);
      if (!p) return wrong();
      if (!in_bounds(static_cast<double>(*p))) return "value " + std::to_string(*p) + " is outside its bounds " + bounds_text(d);
      return "";
    }
    case ParamType::Float: {
      if (auto p = std::get_if<std::int64_t>(&v)) v = static_cast<double>(*p);
      auto p = std::get_if<double>(&v);
      if (!p) return wrong();
      if (!in_bounds(*p)) return "value " + canonical(*p) + " is outside its bounds " + bounds_text(d);
      return "";
    }
    case ParamType::String: {
      auto p = std::get_if<std::string>(&v);
      if (!p) return wrong();
      if (!d.choices.empty() && std::find(d.choices.begin(), d.choices.end(), *p) == d.choices.end())
        return "'" + *p + "' is not one of its choices" + suggest(*p, d.choices);
      return "";
    }
    case ParamType::Path: {
      auto p = std::get_if<std::string>(&v);
      if (!p) return wrong();
      if (p->empty()) return "";
      fs::path path(*p);
      if (path.is_relative()) path = base_dir / path;
      v = path.lexically_normal().string();
      return "";
    }
    case ParamType::Date: {
      auto p = std::get_if<std::string>(&v);
      if (!p) return wrong();
      if (p->empty()) return "";
      try {
        v = format_date(parse_date(*p));  // normalised: 20160101 → 2016-01-01
      } catch (const std::invalid_argument& e) {
        return e.what();
      }
      return "";
    }
    case ParamType::FloatList: {
      if (auto s = std::get_if<std::vector<std::string>>(&v); s && s->empty()) v = std::vector<double>{};
      auto p = std::get_if<std::vector<double>>(&v);
      if (!p) return wrong();
      for (double x : *p)
        if (!in_bounds(x)) return "item " + canonical(x) + " is outside its bounds " + bounds_text(d);
      return "";
    }
    case ParamType::StringList: {
      if (auto s = std::get_if<std::vector<double>>(&v); s && s->empty()) v = std::vector<std::string>{};
      auto p = std::get_if<std::vector<std::string>>(&v);
      if (!p) return wrong();
      if (!d.choices.empty())
        for (auto& x : *p)
          if (std::find(d.choices.begin(), d.choices.end(), x) == d.choices.end())
            return "item '" + x + "' is not one of its choices" + suggest(x, d.choices);
      return "";
    }
  }
  return "";
}

void resolve(Workflow& wf, const PluginSet& plugins) {
  std::vector<Diagnostic> diags;
  const fs::path base_dir = fs::absolute(wf.file).parent_path();
  std::vector<std::string> ids;
  for (auto& n : wf.nodes) ids.push_back(n.id);
  const auto all_types = plugins.node_names();

  // Pass 1: node types, parameters.
  for (auto& n : wf.nodes) {
    n.type = plugins.find(n.plugin);
    if (!n.type) {
      std::string hint = suggest(n.plugin, all_types);
      if (!plugins.refused().empty()) hint += " (" + std::to_string(plugins.refused().size()) +
                                              " plugin libraries were refused; see 'couplet plugins')";
      diags.push_back({n.plugin_pos, "node '" + n.id + "': unknown plugin '" + n.plugin + "'" + hint});
      continue;
    }
    const NodeDecl& d = *n.type->decl;
    std::vector<std::string> pnames;
    for (auto& p : d.params) pnames.push_back(p.name);
    for (auto& [name, setting] : n.params) {
      const ParamDecl* pd = d.find_param(name);
      if (!pd) {
        diags.push_back({setting.pos, "unknown parameter '" + name + "' for node '" + n.id + "' (" + n.plugin + ")" +
                                          suggest(name, pnames)});
        continue;
      }
      std::string why = check_param_value(*pd, setting.value, base_dir);
      if (!why.empty())
        diags.push_back({setting.pos, "parameter '" + name + "' of node '" + n.id + "' (" + n.plugin + ") " + why});
    }
    for (auto& p : d.params) {
      if (n.params.count(p.name)) continue;
      if (p.required()) {
        diags.push_back({n.pos, "node '" + n.id + "' (" + n.plugin + ") needs parameter '" + p.name + "' (" +
                                    to_string(p.type) + "): " + p.doc});
        continue;
      }
      ParamSetting ps{*p.default_value, n.pos, true};
      check_param_value(p, ps.value, base_dir);  // resolves default paths; defaults were checked at load time
      n.params[p.name] = ps;
    }
    n.seed = derive_seed(wf.seed, n.id);
  }

  // Pass 2: inputs (needs every node's type).
  for (auto& n : wf.nodes) {
    if (!n.type) continue;
    const NodeDecl& d = *n.type->decl;
    std::vector<std::string> in_names;
    for (auto& p : d.inputs) in_names.push_back(p.name);
    for (auto& [port, ref] : n.inputs) {
      const PortDecl* in = d.find_input(port);
      if (!in) {
        diags.push_back({ref.pos, "node '" + n.id + "' (" + n.plugin + ") has no input port '" + port + "'" +
                                      suggest(port, in_names)});
        continue;
      }
      int src = wf.index_of(ref.node);
      if (src < 0) {
        diags.push_back({ref.pos, "input '" + port + "' of node '" + n.id + "' refers to unknown node '" + ref.node +
                                      "'" + suggest(ref.node, ids)});
        continue;
      }
      const auto& producer = wf.nodes[src];
      if (!producer.type) continue;  // already reported
      const PortDecl* out = producer.type->decl->find_output(ref.port);
      if (!out) {
        std::vector<std::string> outs;
        for (auto& p : producer.type->decl->outputs) outs.push_back(p.name);
        diags.push_back({ref.pos, "node '" + ref.node + "' (" + producer.plugin + ") has no output port '" + ref.port +
                                      "'" + suggest(ref.port, outs)});
        continue;
      }
      if (out->kind != in->kind)
        diags.push_back({ref.pos, "port type mismatch: input '" + port + "' of node '" + n.id + "' expects a " +
                                      to_string(in->kind) + ", but '" + ref.node + "." + ref.port + "' is a " +
                                      to_string(out->kind)});
    }
    for (auto& p : d.inputs)
      if (p.required && !n.inputs.count(p.name))
        diags.push_back({n.pos, "node '" + n.id + "' (" + n.plugin + ") is missing its required input '" + p.name +
                                    "' (" + to_string(p.kind) + ": " + p.doc + ")"});
  }
  if (!diags.empty()) throw ValidationError(std::move(diags));

  // Pass 3: the graph must be acyclic.
  check_acyclic(wf);
}

std::string canonical(const ParamValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::int64_t>) return std::to_string(x);
        else if constexpr (std::is_same_v<T, double>) {
          // Shortest text that reads back to the same double, in plain notation where that is
          // reasonable (10.0, not 1e+01), and that TOML reads as a float.
          if (!std::isfinite(x)) return std::isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf");
          char buf[64];
          const bool plain = x == 0 || (std::fabs(x) >= 1e-5 && std::fabs(x) < 1e16);
          for (int prec = plain ? 1 : 0; prec <= 17; ++prec) {
            std::snprintf(buf, sizeof buf, plain ? "%.*f" : "%.*e", prec, x);
            if (std::strtod(buf, nullptr) == x) break;
          }
          return buf;
        } else if constexpr (std::is_same_v<T, std::string>) {
          std::ostringstream o;
          o << toml::value<std::string>(x);
          return o.str();
        } else {
          std::string s = "[";
          for (std::size_t i = 0; i < x.size(); ++i) s += (i ? ", " : "") + canonical(ParamValue(x[i]));
          return s + "]";
        }
      },
      v);
}

std::string resolved_toml(const Workflow& wf) {
  std::ostringstream o;
  o << "# Resolved workflow: every parameter explicit, paths absolute. Written by couplet.\n";
  o << "couplet = " << kWorkflowSchema << "\n";
  o << "name = " << canonical(ParamValue(wf.name)) << "\n";
  if (!wf.description.empty()) o << "description = " << canonical(ParamValue(wf.description)) << "\n";
  o << "seed = " << wf.seed << "\n";
  for (auto& n : wf.nodes) {
    o << "\n[[node]]\nid = " << canonical(ParamValue(n.id)) << "\nplugin = " << canonical(ParamValue(n.plugin)) << "\n";
    if (!n.doc.empty()) o << "doc = " << canonical(ParamValue(n.doc)) << "\n";
    if (n.type) o << "# plugin library: " << n.type->file().string() << " (version " << n.type->plugin_version() << ")\n";
    o << "# node seed: " << n.seed << "\n";
    if (!n.inputs.empty()) {
      o << "[node.inputs]\n";
      for (auto& [port, ref] : n.inputs) o << port << " = " << canonical(ParamValue(ref.node + "." + ref.port)) << "\n";
    }
    if (!n.params.empty()) {
      o << "[node.params]\n";
      for (auto& [name, p] : n.params)
        o << name << " = " << canonical(p.value) << (p.is_default ? "  # default" : "") << "\n";
    }
  }
  return o.str();
}

}  // namespace couplet::framework
