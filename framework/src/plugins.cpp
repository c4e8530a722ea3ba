#include <couplet/framework/diagnostics.hpp>
#include <couplet/framework/plugins.hpp>
#include <couplet/framework/workflow.hpp>

#ifndef BOOST_DLL_USE_STD_FS
#define BOOST_DLL_USE_STD_FS  // Boost.DLL on std::filesystem: no Boost.Filesystem library needed
#endif
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#ifndef COUPLET_DEFAULT_PLUGIN_DIR
#define COUPLET_DEFAULT_PLUGIN_DIR ""
#endif

namespace couplet::framework {

namespace fs = std::filesystem;

struct LoadedPlugin {
  // Order matters: members are destroyed bottom-up, so the registry (holding code from the library)
  // goes before the library handle.
  boost::dll::shared_library library;
  fs::path file;
  std::string name, version, torch_version, framework_version, compiler;
  Registry registry;
};

const std::string& NodeType::plugin_name() const { return plugin->name; }
const std::string& NodeType::plugin_version() const { return plugin->version; }
const fs::path& NodeType::file() const { return plugin->file; }

PluginSet::PluginSet() = default;
PluginSet::~PluginSet() = default;
PluginSet::PluginSet(PluginSet&&) noexcept = default;
PluginSet& PluginSet::operator=(PluginSet&&) noexcept = default;

bool is_plugin_file_name(const std::string& f) {
  return f.rfind("libcouplet_", 0) == 0 && f.size() > 14 && f.compare(f.size() - 3, 3, ".so") == 0;
}

namespace {

std::string major_minor(const std::string& v) {
  auto first = v.find('.');
  if (first == std::string::npos) return v;
  auto second = v.find('.', first + 1);
  return v.substr(0, second);
}

bool valid_node_name(const std::string& n) {
  // "library.what": lower-case words separated by dots/underscores.
  if (n.empty() || n.find('.') == std::string::npos || n.front() == '.' || n.back() == '.') return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  });
}

bool value_matches(const ParamDecl& p, const ParamValue& v) {
  switch (p.type) {
    case ParamType::Bool: return std::holds_alternative<bool>(v);
    case ParamType::Int: return std::holds_alternative<std::int64_t>(v);
    case ParamType::Float: return std::holds_alternative<double>(v);
    case ParamType::String:
    case ParamType::Path:
    case ParamType::Date: return std::holds_alternative<std::string>(v);
    case ParamType::FloatList: return std::holds_alternative<std::vector<double>>(v);
    case ParamType::StringList: return std::holds_alternative<std::vector<std::string>>(v);
  }
  return false;
}

// A declaration that cannot be validated against is the plugin author's bug: refuse the library.
void check_declaration(const NodeDecl& d, const fs::path& file) {
  auto fail = [&](const std::string& what) {
    throw PluginError(file.string() + ": node '" + d.name + "': " + what);
  };
  if (!valid_node_name(d.name)) fail("name must look like 'library.what' (lower case, digits, '_', '.')");
  if (!d.run) fail("declares no run function");
  std::set<std::string> seen;
  for (auto& p : d.inputs) if (!seen.insert("in:" + p.name).second) fail("input port '" + p.name + "' declared twice");
  for (auto& p : d.outputs) if (!seen.insert("out:" + p.name).second) fail("output port '" + p.name + "' declared twice");
  for (auto& p : d.params) {
    if (!seen.insert("param:" + p.name).second) fail("parameter '" + p.name + "' declared twice");
    if (p.default_value && !value_matches(p, *p.default_value))
      fail("parameter '" + p.name + "' has a default of the wrong type (declared " + to_string(p.type) + ")");
    if (p.default_value) {
      // A default the workflow validator would reject is the plugin author's bug, found at load time.
      ParamValue v = *p.default_value;
      std::string why = check_param_value(p, v, fs::current_path());
      if (!why.empty()) fail("parameter '" + p.name + "' has an invalid default: " + why);
    }
  }
}

}  // namespace

void PluginSet::load_file(const fs::path& file) {
  auto lp = std::make_shared<LoadedPlugin>();
  lp->file = file;
  try {
    // rtld_now: an unresolved symbol must refuse the library now, not crash a node later.
    lp->library.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginError(file.string() + ": cannot be loaded: " + e.what());
  }
  if (!lp->library.has(kDescriptorSymbol))
    throw PluginError(file.string() + ": not a couplet plugin: it exports no '" + std::string(kDescriptorSymbol) +
                      "' symbol (define one with COUPLET_PLUGIN)");
  const PluginDescriptor* d = lp->library.get<const PluginDescriptor*()>(kDescriptorSymbol)();
  if (!d) throw PluginError(file.string() + ": its descriptor function returned null");

  auto mismatch = [&](const std::string& what, const std::string& plugin, const std::string& ours) {
    return PluginError(file.string() + ": " + what + " mismatch: plugin has " + plugin +
                       ", this couplet has " + ours + " (rebuild the plugin against this couplet)");
  };
  // Read the ABI version first: nothing else in the descriptor may be trusted if it differs.
  if (d->abi_version != COUPLET_PLUGIN_ABI_VERSION)
    throw mismatch("plugin ABI version", std::to_string(d->abi_version), std::to_string(COUPLET_PLUGIN_ABI_VERSION));
  if (d->descriptor_size != sizeof(PluginDescriptor) || d->descriptor_align != alignof(PluginDescriptor))
    throw mismatch("descriptor size/alignment",
                   std::to_string(d->descriptor_size) + "/" + std::to_string(d->descriptor_align),
                   std::to_string(sizeof(PluginDescriptor)) + "/" + std::to_string(alignof(PluginDescriptor)));
  if (d->sizeof_registry != sizeof(Registry) || d->sizeof_node_decl != sizeof(NodeDecl) ||
      d->sizeof_dataset != sizeof(Dataset)) {
    std::ostringstream p, o;
    p << "sizeof(Registry, NodeDecl, Dataset) = " << d->sizeof_registry << ", " << d->sizeof_node_decl << ", "
      << d->sizeof_dataset;
    o << sizeof(Registry) << ", " << sizeof(NodeDecl) << ", " << sizeof(Dataset);
    throw mismatch("SDK type layout", p.str(), o.str());
  }
  lp->name = d->plugin_name ? d->plugin_name : "";
  lp->version = d->plugin_version ? d->plugin_version : "";
  lp->framework_version = d->framework_version ? d->framework_version : "";
  lp->torch_version = d->torch_version ? d->torch_version : "";
  lp->compiler = d->compiler ? d->compiler : "";
  if (major_minor(lp->framework_version) != major_minor(COUPLET_VERSION_STRING))
    throw mismatch("framework version", lp->framework_version, COUPLET_VERSION_STRING);
  if (!lp->torch_version.empty())
    for (auto& other : libs_)
      if (!other->torch_version.empty() && other->torch_version != lp->torch_version)
        throw PluginError(file.string() + ": LibTorch version mismatch: plugin built against " +
                          lp->torch_version + ", but " + other->file.string() + " (already loaded) uses " +
                          other->torch_version + "; one process holds one LibTorch");
  if (!d->register_nodes) throw PluginError(file.string() + ": descriptor has no register function");
  try {
    d->register_nodes(lp->registry);
  } catch (const std::exception& e) {
    throw PluginError(file.string() + ": registering its nodes failed: " + e.what());
  }
  std::set<std::string> names;
  for (auto& decl : lp->registry.nodes()) {
    check_declaration(decl, file);
    if (!names.insert(decl.name).second)
      throw PluginError(file.string() + ": node '" + decl.name + "' is registered twice by this library");
    auto it = nodes_.find(decl.name);
    if (it != nodes_.end())
      throw PluginError("node '" + decl.name + "' is registered twice: by " + it->second.file().string() +
                        " and by " + file.string());
  }
  for (auto& decl : lp->registry.nodes()) nodes_[decl.name] = NodeType{&decl, lp};
  libs_.push_back(std::move(lp));
  loaded_names_.push_back(file.filename().string());
}

void PluginSet::load_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && is_plugin_file_name(e.path().filename().string())) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (auto& f : files) {
    auto fname = f.filename().string();
    if (std::find(loaded_names_.begin(), loaded_names_.end(), fname) != loaded_names_.end()) continue;
    try {
      load_file(f);
    } catch (const PluginError& e) {
      if (std::string(e.what()).find("is registered twice") != std::string::npos) throw;
      refused_.push_back({f, e.what()});
    }
  }
}

void PluginSet::load_search_path(const std::vector<fs::path>& dirs) {
  for (auto& d : dirs) load_directory(d);
}

const NodeType* PluginSet::find(const std::string& n) const {
  auto it = nodes_.find(n);
  return it == nodes_.end() ? nullptr : &it->second;
}

std::vector<std::string> PluginSet::node_names() const {
  std::vector<std::string> v;
  for (auto& [k, _] : nodes_) v.push_back(k);
  return v;
}

std::vector<LibraryInfo> PluginSet::library_info() const {
  std::vector<LibraryInfo> v;
  for (auto& lp : libs_) {
    LibraryInfo info{lp->file, lp->name, lp->version, lp->framework_version, lp->torch_version, lp->compiler, {}};
    for (auto& d : lp->registry.nodes()) info.nodes.push_back(d.name);
    v.push_back(std::move(info));
  }
  return v;
}

namespace {
template <class T, class Get>
std::shared_ptr<T> make_from_factory(const std::vector<std::shared_ptr<LoadedPlugin>>& libs, const Model& m, Get get) {
  for (auto& lp : libs)
    for (auto& f : lp->registry.factories())
      if (f.type == m.type) {
        auto& fn = get(f);
        if (!fn) return nullptr;
        std::shared_ptr<T> obj = fn(m);
        if (!obj) return nullptr;
        // Keep the library loaded for as long as the object lives.
        auto holder = std::make_shared<std::pair<std::shared_ptr<LoadedPlugin>, std::shared_ptr<T>>>(lp, obj);
        return std::shared_ptr<T>(holder, obj.get());
      }
  return nullptr;
}
}  // namespace

std::shared_ptr<Predictor> PluginSet::predictor(const Model& m) const {
  return make_from_factory<Predictor>(libs_, m, [](const ModelFactory& f) -> auto& { return f.predictor; });
}
std::shared_ptr<Surrogate> PluginSet::surrogate(const Model& m) const {
  return make_from_factory<Surrogate>(libs_, m, [](const ModelFactory& f) -> auto& { return f.surrogate; });
}

std::shared_ptr<void> PluginSet::loss_term(const Model& m) const {
  return make_from_factory<void>(libs_, m, [](const ModelFactory& f) -> auto& { return f.loss_term; });
}

void PluginSet::configure_threads(int threads) const {
  for (auto& lp : libs_)
    if (lp->registry.thread_hook()) lp->registry.thread_hook()(threads);
}

std::shared_ptr<const Artifact> keep_alive(std::shared_ptr<const Artifact> a, std::shared_ptr<LoadedPlugin> p) {
  if (!a) return a;
  // pair destroys .second (the artifact) before .first (the library).
  auto holder = std::make_shared<std::pair<std::shared_ptr<LoadedPlugin>, std::shared_ptr<const Artifact>>>(
      std::move(p), a);
  return std::shared_ptr<const Artifact>(holder, a.get());
}

std::vector<fs::path> plugin_search_path(const std::vector<fs::path>& cli_paths,
                                         const std::vector<fs::path>& workflow_paths) {
  std::vector<fs::path> dirs = cli_paths;
  if (const char* env = std::getenv("COUPLET_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) dirs.emplace_back(item);
  }
  dirs.insert(dirs.end(), workflow_paths.begin(), workflow_paths.end());
  if (*COUPLET_DEFAULT_PLUGIN_DIR) dirs.emplace_back(COUPLET_DEFAULT_PLUGIN_DIR);
  std::error_code ec;
  auto exe = boost::dll::program_location(ec);
  if (!ec) dirs.push_back(exe.parent_path().parent_path() / "lib" / "couplet" / "plugins");
  return dirs;
}

}  // namespace couplet::framework
