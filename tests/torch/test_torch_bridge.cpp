// The SDK's LibTorch and Eigen bridges. Its own executable: <torch/torch.h> comes before doctest so
// glog's CHECK cannot silently replace doctest's (TOOLCHAIN.md, gotcha 1).
#include <couplet/torch_bridge.hpp>
#include <couplet/eigen_bridge.hpp>

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

using namespace couplet;

TEST_CASE("as_tensor views a float32 variable without copying and keeps its artifact alive") {
  auto ds = std::make_shared<Dataset>();
  ds->add(Variable("x", {"site", "time"}, {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}));
  const float* storage = ds->var("x").values<float>().data();
  torch::Tensor t = as_tensor(ds->var("x"), ds);
  CHECK(t.data_ptr<float>() == storage);
  CHECK(t.sizes() == torch::IntArrayRef{2, 3});
  CHECK(t.dtype() == torch::kFloat);
  std::weak_ptr<Dataset> weak = ds;
  ds.reset();
  CHECK_FALSE(weak.expired());  // the tensor holds it
  CHECK(t[1][2].item<float>() == 6.0f);
  t = torch::Tensor();
  CHECK(weak.expired());
}

TEST_CASE("as_tensor maps float64 to kDouble and refuses strings") {
  auto ds = std::make_shared<Dataset>();
  ds->add(Variable("y", {"i"}, {2}, std::vector<double>{0.5, 1.5}));
  ds->add(Variable("s", {"i"}, {2}, std::vector<std::string>{"a", "b"}));
  CHECK(as_tensor(ds->var("y"), ds).dtype() == torch::kDouble);
  CHECK_THROWS_AS(as_tensor(ds->var("s"), ds), std::invalid_argument);
}

TEST_CASE("to_variable copies any tensor into a float32 variable") {
  auto t = torch::arange(6, torch::kDouble).reshape({3, 2}).t();  // non-contiguous on purpose
  Variable v = to_variable(t, "z", {"a", "b"}, {{"units", "1"}});
  CHECK(v.shape() == std::vector<std::size_t>{2, 3});
  CHECK(v.values<float>() == std::vector<float>{0, 2, 4, 1, 3, 5});
  CHECK(v.attr("units") == "1");
}

TEST_CASE("the thread hook sets LibTorch's intra-op threads") {
  Registry reg;
  use_executor_threads(reg);
  REQUIRE(reg.thread_hook());
  reg.thread_hook()(1);
  CHECK(at::get_num_threads() == 1);
}

TEST_CASE("eigen views are zero-copy and row-major") {
  Variable v("x", {"site", "time"}, {2, 3}, std::vector<double>{1, 2, 3, 4, 5, 6});
  auto m = eigen_matrix<double>(v);
  CHECK(m(1, 0) == 4);
  CHECK(m.data() == v.values<double>().data());
  CHECK(eigen_vector<double>(v).sum() == 21);
  Variable w("w", {"i"}, {2}, std::vector<double>{1, 2});
  CHECK_THROWS_AS(eigen_matrix<double>(w), std::invalid_argument);
}
