// Template plugin: one node that rescales a variable of a Dataset, showing every part of the SDK a
// node usually needs. Copy the folder, rename "example", and replace the node.
#include <couplet/sdk.hpp>

#include <cmath>

using namespace couplet;

// The descriptor symbol and the registration function in one macro: plugin name and version. Bump the
// version (or a node's .version()) when outputs change for the same inputs: it invalidates caches.
COUPLET_PLUGIN("example", "1.0.0") {
  plugin.node("example.rescale")
      .version("1")
      .summary("Rescales one variable: y = factor * x + offset (missing values stay missing)")
      .doc("A template node. Copies every variable of `data`, replacing `variable` by its rescaled values.")
      .input("data", ArtifactKind::Dataset, "any dataset holding `variable`")
      .output("data", ArtifactKind::Dataset, "the same dataset with `variable` rescaled")
      .param(param_string("variable", "SSM", "name of the variable to rescale"))
      .param(param_float("factor", 1.0, "multiplier").bounds(-1e6, 1e6))
      .param(param_float("offset", 0.0, "added after scaling").in_units("units of the variable"))
      .run([](Context& ctx) {
        const Dataset& in = ctx.dataset("data");
        const auto name = ctx.param<std::string>("variable");
        if (!in.has(name)) throw NodeError("input 'data' has no variable '" + name + "'");
        const double a = ctx.param<double>("factor"), b = ctx.param<double>("offset");

        auto out = std::make_shared<Dataset>(in);  // artifacts are immutable: copy, then change the copy
        const Variable& v = in.var(name);
        std::vector<double> y = v.as_double();
        for (std::size_t i = 0; i < y.size(); ++i) {
          if (i % 65536 == 0) {
            ctx.check_cancelled();  // long loops stay responsive to Ctrl-C
            ctx.progress(static_cast<double>(i), static_cast<double>(y.size()), "rescaling");
          }
          if (!std::isnan(y[i])) y[i] = a * y[i] + b;
        }
        Attributes attrs = v.attrs();
        attrs["history"] = "rescaled by example.rescale";
        out->add(Variable(name, v.dims(), v.shape(), std::move(y), attrs));
        ctx.info("rescaled " + name + " (" + std::to_string(v.size()) + " values)");
        ctx.set_output("data", out);
      });
}
