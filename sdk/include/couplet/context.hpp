// couplet SDK — the node context: everything a running node may use.
//
// A node never parses TOML and never touches the file system for its artifacts: it reads its
// parameters and inputs here and hands its outputs back here; the executor stores them.
#pragma once

#include <couplet/artifact.hpp>
#include <couplet/node.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>

namespace couplet {

/// Thrown by Context::check_cancelled(); the executor treats it as an orderly stop, not a failure.
class COUPLET_API Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("cancelled") {}
};

/// A node's bad-input error: the executor reports it with the node id and plugin name.
class COUPLET_API NodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class LogLevel { Debug, Info, Warn, Error };

/// Writes one Dataset output in row blocks along its chunk dimension, so that the node never holds the
/// whole output (Context::chunked_output). The data goes straight to the node's private cache entry.
/// Thread-safe: several threads may write their own row blocks.
class COUPLET_API ChunkedWriter {
 public:
  virtual ~ChunkedWriter() = default;
  /// Writes rows [begin, begin + n) of every streamed variable: `rows` holds each of them (and nothing
  /// else) with first extent n and the declared dtype and other extents. Blocks may come in any order
  /// (the stored file does not depend on it), but each row exactly once.
  virtual void write(std::size_t begin, const Dataset& rows) = 0;
  /// Checks that every row was written (the error names the missing ones) and publishes the output.
  /// A writer destroyed without close() leaves the output unproduced.
  virtual void close() = 0;
};

class COUPLET_API Context {
 public:
  virtual ~Context() = default;

  // --- identity ---------------------------------------------------------------------------------
  virtual const std::string& node_id() const = 0;
  virtual const NodeDecl& decl() const = 0;

  // --- parameters (validated against the declaration before the node runs) ----------------------
  virtual const ParamValue& param_value(const std::string& name) const = 0;
  template <class T> T param(const std::string& name) const;

  // --- inputs and outputs -----------------------------------------------------------------------
  virtual bool has_input(const std::string& port) const = 0;
  virtual std::shared_ptr<const Artifact> input_artifact(const std::string& port) const = 0;
  const Dataset& dataset(const std::string& port) const { return as<Dataset>(port); }
  const Table& table(const std::string& port) const { return as<Table>(port); }
  const Model& model(const std::string& port) const { return as<Model>(port); }
  virtual void set_output(const std::string& port, std::shared_ptr<const Artifact> a) = 0;

  // --- Datasets too large for memory: streamed in row blocks along one dimension ----------------
  /// Starts the Dataset output `port` as a stream (instead of set_output); see ChunkedWriter. The
  /// writer is valid while the node runs.
  virtual std::unique_ptr<ChunkedWriter> chunked_output(const std::string& port, const ChunkedLayout& layout) = 0;
  /// The chunk dimension and length of a Dataset input, read without loading it; Chunking::streamed()
  /// is false when its producer wrote it whole (then read it with dataset()) or it is not connected.
  virtual Chunking input_chunking(const std::string& port) const = 0;
  /// Rows [begin, begin + count) of a streamed Dataset input: variables whose first dimension is the
  /// chunk dimension are sliced to those rows, the others (time, layer, ...) come whole. dataset()
  /// still reads a streamed input, but whole: fine for small ones.
  virtual std::shared_ptr<const Dataset> input_rows(const std::string& port, std::size_t begin,
                                                    std::size_t count) const = 0;
  /// The header of a streamed Dataset input: its dimensions and the variables its producer gave whole
  /// (ChunkedLayout::header: coordinates such as site(site), time(time)), without reading any row.
  virtual std::shared_ptr<const Dataset> input_header(const std::string& port) const = 0;

  /// Behaviour for a Model artifact, from the plugin that registered its type.
  virtual std::shared_ptr<Predictor> predictor(const Model& m) const = 0;
  virtual std::shared_ptr<Surrogate> surrogate(const Model& m) const = 0;
  /// The type-erased LossTerm of a Model (ModelFactory::loss_term); learning plugins call
  /// couplet::loss_term(ctx, m) from torch_bridge.hpp instead.
  virtual std::shared_ptr<void> loss_term_object(const Model& m) const = 0;

  // --- services ---------------------------------------------------------------------------------
  /// This node's seed, derived deterministically from the workflow seed and the node id.
  virtual std::uint64_t seed() const = 0;
  /// An engine seeded with seed(); owned by the context, one per node run.
  virtual std::mt19937_64& rng() = 0;
  /// Threads this node may use for its own parallel loops.
  virtual int threads() const = 0;
  virtual void log(LogLevel level, const std::string& message) = 0;
  void info(const std::string& m) { log(LogLevel::Info, m); }
  void warn(const std::string& m) { log(LogLevel::Warn, m); }
  void debug(const std::string& m) { log(LogLevel::Debug, m); }
  /// Reports progress (done of total, with a short note); cheap enough to call often.
  virtual void progress(double done, double total, const std::string& note = "") = 0;
  /// A private directory for temporary files, removed after the run.
  virtual std::filesystem::path scratch_dir() = 0;
  virtual bool cancelled() const = 0;
  void check_cancelled() const {
    if (cancelled()) throw Cancelled();
  }

 private:
  template <class T> const T& as(const std::string& port) const {
    auto a = input_artifact(port);
    if (!a) throw NodeError("input '" + port + "' is not connected");
    auto* p = dynamic_cast<const T*>(a.get());
    if (!p) throw NodeError("input '" + port + "' holds a " + to_string(a->kind()));
    return *p;
  }
};

namespace detail {
template <class T> struct param_get;
template <> struct param_get<bool> { static bool get(const ParamValue& v) { return std::get<bool>(v); } };
template <> struct param_get<std::int64_t> {
  static std::int64_t get(const ParamValue& v) { return std::get<std::int64_t>(v); }
};
template <> struct param_get<int> {
  static int get(const ParamValue& v) { return static_cast<int>(std::get<std::int64_t>(v)); }
};
template <> struct param_get<double> {
  static double get(const ParamValue& v) {
    if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    return std::get<double>(v);
  }
};
template <> struct param_get<std::string> {
  static std::string get(const ParamValue& v) { return std::get<std::string>(v); }
};
template <> struct param_get<std::vector<double>> {
  static std::vector<double> get(const ParamValue& v) { return std::get<std::vector<double>>(v); }
};
template <> struct param_get<std::vector<std::string>> {
  static std::vector<std::string> get(const ParamValue& v) { return std::get<std::vector<std::string>>(v); }
};
}  // namespace detail

template <class T> T Context::param(const std::string& name) const {
  try {
    return detail::param_get<T>::get(param_value(name));
  } catch (const std::bad_variant_access&) {
    throw NodeError("parameter '" + name + "' read with the wrong type (declared " +
                    std::string(decl().find_param(name) ? to_string(decl().find_param(name)->type) : "nothing") +
                    ")");
  }
}

}  // namespace couplet
