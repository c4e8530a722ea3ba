// The `testing` plugin: small nodes with known behaviour for executor, cache and validation tests.
#include <couplet/sdk.hpp>
#include <couplet/series.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <numeric>
#include <thread>

using namespace couplet;

namespace {

std::shared_ptr<Dataset> one_var(const std::string& var, std::vector<double> v) {
  auto ds = std::make_shared<Dataset>();
  const std::size_t n = v.size();
  ds->add(Variable(var, {"i"}, {n}, std::move(v), {{"units", "1"}}));
  return ds;
}

}  // namespace

COUPLET_PLUGIN("testing", "1.0.0") {
  plugin.node("testing.source")
      .summary("Emits x[i] = start + i for i < n")
      .output("data", ArtifactKind::Dataset, "variable x over dimension i")
      .param(param_int("n", 5, "number of values").bounds(0, 1e8))
      .param(param_float("start", 0.0, "first value"))
      .run([](Context& ctx) {
        std::vector<double> v(static_cast<std::size_t>(ctx.param<std::int64_t>("n")));
        std::iota(v.begin(), v.end(), ctx.param<double>("start"));
        ctx.set_output("data", one_var("x", std::move(v)));
      });

  plugin.node("testing.scale")
      .summary("Multiplies x by a factor")
      .input("data", ArtifactKind::Dataset, "variable x")
      .output("data", ArtifactKind::Dataset, "variable x, scaled")
      .param(param_float("factor", 2.0, "multiplier").bounds(-1e6, 1e6).in_units("1"))
      .run([](Context& ctx) {
        auto v = ctx.dataset("data").var("x").as_double();
        for (auto& x : v) x *= ctx.param<double>("factor");
        ctx.set_output("data", one_var("x", std::move(v)));
      });

  plugin.node("testing.sum")
      .summary("Sums x of one or two datasets into a one-row table")
      .input("a", ArtifactKind::Dataset, "variable x")
      .optional_input("b", ArtifactKind::Dataset, "variable x (optional)")
      .output("total", ArtifactKind::Table, "one row: the sum")
      .run([](Context& ctx) {
        double s = 0;
        for (double x : ctx.dataset("a").var("x").as_double()) s += x;
        if (ctx.has_input("b"))
          for (double x : ctx.dataset("b").var("x").as_double()) s += x;
        auto t = std::make_shared<Table>();
        t->add_column("sum", std::vector<double>{s});
        ctx.set_output("total", t);
      });

  plugin.node("testing.noise")
      .summary("Draws n standard normal values from the node's seeded RNG")
      .output("data", ArtifactKind::Dataset, "variable x")
      .param(param_int("n", 4, "number of values").bounds(0, 1e6))
      .run([](Context& ctx) {
        std::normal_distribution<double> nd;
        std::vector<double> v(static_cast<std::size_t>(ctx.param<std::int64_t>("n")));
        for (auto& x : v) x = nd(ctx.rng());
        ctx.set_output("data", one_var("x", std::move(v)));
      });

  plugin.node("testing.slow")
      .summary("Touches signal_file, then works for `seconds` (checking cancellation), then emits n values")
      .input("data", ArtifactKind::Dataset, "any dataset")
      .output("data", ArtifactKind::Dataset, "variable x of n values")
      .param(param_float("seconds", 1.0, "time to spend").bounds(0, 3600).in_units("s"))
      .param(param_path("signal_file", "", "file created when the node starts (empty: none)"))
      .param(param_int("n", 10, "values in the output").bounds(0, 1e9))
      .run([](Context& ctx) {
        const auto sig = ctx.param<std::string>("signal_file");
        if (!sig.empty()) std::ofstream(sig) << "started\n";
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(ctx.param<double>("seconds"));
        while (std::chrono::steady_clock::now() < end) {
          ctx.check_cancelled();
          ctx.progress(1, 2, "working");
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        std::vector<double> v(static_cast<std::size_t>(ctx.param<std::int64_t>("n")), 1.0);
        ctx.set_output("data", one_var("x", std::move(v)));
      });

  plugin.node("testing.fail")
      .summary("Always fails with a NodeError")
      .input("data", ArtifactKind::Dataset, "any dataset")
      .output("data", ArtifactKind::Dataset, "never produced")
      .param(param_string("message", "deliberate failure", "the error text"))
      .run([](Context& ctx) { throw NodeError(ctx.param<std::string>("message")); });

  plugin.node("testing.params")
      .summary("Declares one parameter of every type, for validation tests")
      .output("table", ArtifactKind::Table, "the parameters as read")
      .param(param_bool("flag", false, "a boolean"))
      .param(param_int("count", 3, "an integer in [1, 10]").bounds(1, 10))
      .param(param_float("rate", 0.5, "a float in [0, 1]").bounds(0, 1).in_units("1/d"))
      .param(param_string("mode", "fast", "one of fast, slow").one_of({"fast", "slow"}))
      .param(param_path("where", ".", "a path"))
      .param(param_floats("weights", std::vector<double>{1, 2}, "floats in [0, 5]").bounds(0, 5))
      .param(param_strings("names", std::vector<std::string>{}, "strings"))
      .param(param_string("needed", std::nullopt, "a required string"))
      .param(param_date("day", "2020-01-01", "a date"))
      .run([](Context& ctx) {
        auto t = std::make_shared<Table>();
        t->add_column("count", std::vector<double>{static_cast<double>(ctx.param<std::int64_t>("count"))});
        t->add_column("rate", std::vector<double>{ctx.param<double>("rate")});
        t->add_column("mode", std::vector<std::string>{ctx.param<std::string>("mode")});
        t->add_column("where", std::vector<std::string>{ctx.param<std::string>("where")});
        ctx.set_output("table", t);
      });

  plugin.node("testing.model")
      .summary("Emits a Model of type testing.affine (y = a x + b) with a registered Predictor")
      .output("model", ArtifactKind::Model, "the model")
      .param(param_float("a", 2.0, "slope"))
      .param(param_float("b", 1.0, "intercept"))
      .run([](Context& ctx) {
        auto m = std::make_shared<Model>();
        m->type = "testing.affine";
        m->config = "{}";
        m->arrays.emplace("coef", Variable("coef", {"k"}, {2}, std::vector<double>{ctx.param<double>("a"), ctx.param<double>("b")}));
        ctx.set_output("model", m);
      });

  plugin.node("testing.apply")
      .summary("Applies a Model through its registered Predictor")
      .input("model", ArtifactKind::Model, "a model with a Predictor")
      .input("data", ArtifactKind::Dataset, "variable x")
      .output("data", ArtifactKind::Dataset, "the prediction")
      .run([](Context& ctx) {
        auto p = ctx.predictor(ctx.model("model"));
        ctx.set_output("data", p->predict(ctx.dataset("data")));
      });

  // Re-writes any Dataset as a streamed one, so that a consumer's streamed-input path can be tested
  // against its whole-input path on the same data.
  plugin.node("testing.restream")
      .summary("Copies a Dataset, streaming its numeric variables along `dim` in blocks of `chunk` rows")
      .input("data", ArtifactKind::Dataset, "any Dataset with dimension `dim`")
      .output("streamed", ArtifactKind::Dataset, "the same Dataset, streamed along `dim`")
      .param(param_string("dim", "site", "chunk dimension"))
      .param(param_int("chunk", 2, "rows per block").bounds(1, 1e8))
      .run([](Context& ctx) {
        const Dataset& in = ctx.dataset("data");
        const auto dim = ctx.param<std::string>("dim");
        const auto chunk = static_cast<std::size_t>(ctx.param<std::int64_t>("chunk"));
        if (!in.has_dim(dim)) throw NodeError("input has no dimension '" + dim + "'");
        const std::size_t n = in.dim(dim);
        ChunkedLayout layout{dim, n, {}, {}};
        layout.header.attrs = in.attrs;
        for (const auto& v : in.variables()) {
          const bool along = !v.dims().empty() && v.dims()[0] == dim;
          if (!along || v.dtype() == DType::String || (v.dims().size() == 1 && v.name() == dim)) {
            layout.header.add(v);
          } else {
            layout.variables.push_back({v.name(), v.dims(), {v.shape().begin() + 1, v.shape().end()}, v.dtype(), v.attrs()});
          }
        }
        auto out = ctx.chunked_output("streamed", layout);
        for (std::size_t b = 0; b < n; b += chunk) {
          const Dataset rows = series::slice_rows(in, dim, b, std::min(chunk, n - b));
          Dataset streamed;
          for (const auto& spec : layout.variables) streamed.add(rows.var(spec.name));
          out->write(b, streamed);
        }
        out->close();
      });

  // Streams x(i) = i and y(i, k) = 10 i + k (k < 3) in blocks, the way a global run writes cells.
  plugin.node("testing.stream")
      .summary("Writes x(i) = i and y(i, k) = 10 i + k for i < n as a streamed Dataset, `chunk` rows per block")
      .output("data", ArtifactKind::Dataset, "variables x(i) and y(i, k), streamed along i")
      .param(param_int("n", 10, "rows").bounds(0, 1e8))
      .param(param_int("chunk", 3, "rows per block").bounds(1, 1e8))
      .param(param_bool("reverse", false, "write the blocks last to first"))
      .param(param_bool("skip_last", false, "leave the last block out (close() must fail)"))
      .param(param_path("signal_file", "", "file created after the first block (empty: none)"))
      .param(param_float("seconds", 0.0, "time to wait after the first block").bounds(0, 3600).in_units("s"))
      .run([](Context& ctx) {
        const auto n = static_cast<std::size_t>(ctx.param<std::int64_t>("n"));
        const auto chunk = static_cast<std::size_t>(ctx.param<std::int64_t>("chunk"));
        ChunkedLayout layout{"i", n, {}, {}};
        std::vector<double> index(n);
        std::iota(index.begin(), index.end(), 0.0);
        layout.header.add(Variable("i", {"i"}, {n}, index));
        layout.header.add(Variable("k", {"k"}, {3}, std::vector<double>{0, 1, 2}));
        layout.header.attrs["title"] = "streamed by testing.stream";
        layout.variables = {{"x", {"i"}, {}, DType::Float64, {{"units", "1"}}},
                            {"y", {"i", "k"}, {3}, DType::Float32, {}}};
        auto out = ctx.chunked_output("data", layout);
        std::vector<std::size_t> starts;
        for (std::size_t b = 0; b < n; b += chunk) starts.push_back(b);
        if (ctx.param<bool>("skip_last") && !starts.empty()) starts.pop_back();
        if (ctx.param<bool>("reverse")) std::reverse(starts.begin(), starts.end());
        for (std::size_t b : starts) {
          const std::size_t m = std::min(chunk, n - b);
          Dataset rows;
          std::vector<double> x(m);
          std::vector<float> y(m * 3);
          for (std::size_t r = 0; r < m; ++r) {
            x[r] = static_cast<double>(b + r);
            for (std::size_t k = 0; k < 3; ++k) y[r * 3 + k] = static_cast<float>(10 * (b + r) + k);
          }
          rows.add(Variable("x", {"i"}, {m}, std::move(x)));
          rows.add(Variable("y", {"i", "k"}, {m, 3}, std::move(y)));
          out->write(b, rows);
          if (b == starts.front()) {
            const auto sig = ctx.param<std::string>("signal_file");
            if (!sig.empty()) std::ofstream(sig) << "started\n";
            const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(ctx.param<double>("seconds"));
            while (std::chrono::steady_clock::now() < end) {
              ctx.check_cancelled();
              std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
          }
        }
        out->close();
      });

  plugin.node("testing.stream_sum")
      .summary("Sums x and y of a streamed Dataset, reading `chunk` rows at a time")
      .input("data", ArtifactKind::Dataset, "variables x(i) and y(i, k), streamed along i")
      .output("total", ArtifactKind::Table, "one row: sum (of x), sum_y, blocks (reads)")
      .param(param_int("chunk", 4, "rows per read").bounds(1, 1e8))
      .run([](Context& ctx) {
        const Chunking c = ctx.input_chunking("data");
        if (c.dim != "i") throw NodeError("expected a Dataset streamed along i, got '" + c.dim + "'");
        const auto chunk = static_cast<std::size_t>(ctx.param<std::int64_t>("chunk"));
        double sx = 0, sy = 0, blocks = 0;
        for (std::size_t b = 0; b < c.length; b += chunk, ++blocks) {
          auto rows = ctx.input_rows("data", b, std::min(chunk, c.length - b));
          for (double x : rows->var("x").as_double()) sx += x;
          for (double y : rows->var("y").as_double()) sy += y;
          if (rows->var("k").size() != 3) throw NodeError("coordinate k must come whole");
        }
        auto t = std::make_shared<Table>();
        t->add_column("sum", std::vector<double>{sx});
        t->add_column("sum_y", std::vector<double>{sy});
        t->add_column("blocks", std::vector<double>{blocks});
        ctx.set_output("total", t);
      });

  struct Affine : Predictor {
    double a, b;
    std::shared_ptr<const Dataset> predict(const Dataset& in) const override {
      auto v = in.var("x").as_double();
      for (auto& x : v) x = a * x + b;
      return one_var("x", std::move(v));
    }
  };
  plugin.model_type(ModelFactory{"testing.affine",
                                 [](const Model& m) -> std::shared_ptr<Predictor> {
                                   auto p = std::make_shared<Affine>();
                                   const auto& c = m.array("coef").values<double>();
                                   p->a = c.at(0);
                                   p->b = c.at(1);
                                   return p;
                                 },
                                 nullptr, nullptr});
}
