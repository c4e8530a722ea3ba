// couplet's LibTorch learning code against PyTorch in Python: the C++ half. Run both halves with
// bench/learn_vs_pytorch.sh (it prints the ratios); this program alone:
//
//   bench_learn [--data data/uscrn] [--out DIR] [--threads 1,2] [--samples 20000] [--epochs 3]
//
// Data: the bundled USCRN daily files (54 stations, 2016-01-01 .. 2020-12-31 = 1,827 days), read here
// with a small parser (not through io.uscrn: the bench links only the learn code). The paper's LSTM
// configuration: seq_len 30, hidden 64, dropout 0.5, batch 64, Adam lr 1e-3, and 10 input features =
// lagged 5 cm SSM + 7 drivers (P, solar radiation, T mean/max/min, RH mean, surface temperature) +
// 2 statics (longitude, latitude).
//
// (a) training: couplet::learn::train() — the real shared trainer — on a fixed random subset of the
//     2016-2018 samples, no validation, no early stopping; samples/s = epochs × samples / wall time.
// (b) rollout: couplet::learn::rollout() of all 54 sites over all 1,827 days from day 30 (the first 30
//     days seed the window), Windowed (the paper) and Stateful. The rollout frame is made complete so
//     that both sides do exactly 54 × 1,797 steps: driver values still missing after the usual gap fill
//     are set to 0 (the training mean in z-units) and missing target values in the seeding window too.
//
// With --out DIR it writes what the Python half needs: the training samples, the rollout inputs, the
// trained weights (so the Python rollout can be checked against couplet's predictions) and
// couplet.json with the timings. Every number is also printed as a JSON line.
#include "learn/learn.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace couplet::learn;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
long days_from_civil(long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long>(doe) - 719468;
}

// USCRN daily01 columns (1-based, README of data/uscrn): the drivers and the 5 cm soil moisture.
constexpr int kDriverCols[] = {10, 11, 8, 6, 7, 18, 15};  // P, SOLARAD, T_MEAN, T_MAX, T_MIN, RH_AVG, SUR_TEMP_AVG
const char* kDriverNames[] = {"P", "SOLARAD", "T_MEAN", "T_MAX", "T_MIN", "RH_AVG", "SUR_TEMP_AVG"};
constexpr int kSsmCol = 19;

Frame read_uscrn(const fs::path& dir, long first_day, std::size_t T) {
  Frame f;
  std::ifstream st(dir / "stations.csv");
  if (!st) throw std::runtime_error("cannot read " + (dir / "stations.csv").string());
  std::vector<double> lon, lat;
  std::string line;
  std::getline(st, line);  // header
  while (std::getline(st, line)) {
    std::stringstream in(line);
    std::string name, wban, x, y;
    std::getline(in, name, ',');
    std::getline(in, wban, ',');
    std::getline(in, x, ',');
    std::getline(in, y, ',');
    if (name.empty()) continue;
    f.sites.push_back(name);
    lon.push_back(std::stod(x));
    lat.push_back(std::stod(y));
  }
  const std::size_t S = f.sites.size();
  for (std::size_t t = 0; t < T; ++t) f.time.push_back(static_cast<double>(first_day + static_cast<long>(t)));
  f.target.assign(S * T, kNaN);
  f.drivers.assign(std::size(kDriverCols), std::vector<double>(S * T, kNaN));
  f.statics = {lon, lat};
  for (std::size_t s = 0; s < S; ++s)
    for (int year = 2016; year <= 2020; ++year) {
      const fs::path file = dir / "daily01" / std::to_string(year) /
                            ("CRND0103-" + std::to_string(year) + "-" + f.sites[s] + ".txt");
      std::ifstream in(file);
      if (!in) throw std::runtime_error("cannot read " + file.string());
      while (std::getline(in, line)) {
        std::stringstream ls(line);
        std::vector<std::string> c;
        for (std::string w; ls >> w;) c.push_back(w);
        if (c.size() < 28) continue;
        const long date = std::stol(c[1]);
        const long t = days_from_civil(date / 10000, static_cast<unsigned>(date / 100 % 100),
                                       static_cast<unsigned>(date % 100)) - first_day;
        if (t < 0 || t >= static_cast<long>(T)) continue;
        auto value = [&](int col) {
          const double v = std::stod(c[static_cast<std::size_t>(col - 1)]);
          return (v == -9999.0 || (col >= 19 && col <= 23 && v == -99.0)) ? kNaN : v;
        };
        const std::size_t i = s * T + static_cast<std::size_t>(t);
        f.target[i] = value(kSsmCol);
        for (std::size_t d = 0; d < std::size(kDriverCols); ++d) f.drivers[d][i] = value(kDriverCols[d]);
      }
    }
  return f;
}

template <class T>
void write_raw(const fs::path& file, const T* p, std::size_t n) {
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n * sizeof(T)));
  if (!out) throw std::runtime_error("cannot write " + file.string());
}
void write_tensor(const fs::path& file, const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat).contiguous();
  write_raw(file, c.data_ptr<float>(), static_cast<std::size_t>(c.numel()));
}

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> v;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, ',');) v.push_back(std::stoi(x));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path data = "data/uscrn", out_dir;
  std::vector<int> threads{1, 2};
  std::int64_t n_samples = 20000;
  int epochs = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--data") data = next();
    else if (a == "--out") out_dir = next();
    else if (a == "--threads") threads = parse_ints(next());
    else if (a == "--samples") n_samples = std::stoll(next());
    else if (a == "--epochs") epochs = std::stoi(next());
    else {
      std::fprintf(stderr,
                   "usage: bench_learn [--data data/uscrn] [--out DIR] [--threads 1,2] [--samples 20000] "
                   "[--epochs 3]\n");
      return 2;
    }
  }

  // The frame: 54 stations × 2016-01-01 .. 2020-12-31.
  const long first_day = days_from_civil(2016, 1, 1);
  const std::size_t T = static_cast<std::size_t>(days_from_civil(2020, 12, 31) - first_day + 1);
  const double t_read = now();
  const Frame raw = read_uscrn(data, first_day, T);
  const std::size_t S = raw.n_sites();
  std::fprintf(stderr, "read %zu stations × %zu days in %.1f s\n", S, T, now() - t_read);

  Config cfg;  // the paper's LSTM
  cfg.kind = Kind::Lstm;
  cfg.target = "SSM";
  cfg.drivers.assign(std::begin(kDriverNames), std::end(kDriverNames));
  cfg.statics = {"longitude", "latitude"};
  cfg.seq_len = 30;
  cfg.hidden = 64;
  cfg.dropout = 0.5;
  const std::size_t k = static_cast<std::size_t>(cfg.seq_len);
  const auto F = static_cast<std::int64_t>(cfg.seq_features());

  // Training days 2016-2018 at every site: the normalisation and the samples.
  const std::size_t train_end = static_cast<std::size_t>(days_from_civil(2019, 1, 1) - first_day);
  std::vector<char> train_mask(S * T, 0);
  for (std::size_t s = 0; s < S; ++s) std::fill_n(train_mask.begin() + s * T, train_end, 1);
  const Norm norm = fit_norm(raw, train_mask);
  const Frame nf = normalise(raw, norm, cfg);
  Samples all = build_samples(nf, cfg, train_mask);
  n_samples = std::min(n_samples, all.size());
  torch::manual_seed(1234);
  auto pick = torch::randperm(all.size(), torch::kLong).slice(0, 0, n_samples);
  Samples train_set;
  train_set.seq = all.seq.index_select(0, pick).contiguous();
  train_set.y = all.y.index_select(0, pick).contiguous();
  std::fprintf(stderr, "%lld training samples of %lld (2016-2018), window %zu × %lld features\n",
               static_cast<long long>(n_samples), static_cast<long long>(all.size()), k, static_cast<long long>(F));

  // The rollout frame: complete, so that every site steps every day from day k.
  Frame rf = nf;
  for (auto& d : rf.drivers)
    for (auto& v : d)
      if (!std::isfinite(v)) v = 0.0;
  for (std::size_t s = 0; s < S; ++s)
    for (std::size_t t = 0; t < k; ++t)
      if (!std::isfinite(rf.target[s * T + t])) rf.target[s * T + t] = 0.0;
  const std::vector<std::size_t> start(S, k);

  std::int64_t n_params = 0;
  {
    Net probe = make_net(cfg, 42);
    for (auto& p : probe->parameters()) n_params += p.numel();
  }
  std::printf("{\"side\": \"couplet\", \"model\": \"lstm\", \"features\": %lld, \"seq_len\": %zu, \"hidden\": %d, "
              "\"batch\": 64, \"parameters\": %lld, \"samples\": %lld, \"epochs\": %d, \"sites\": %zu, \"days\": %zu}\n",
              static_cast<long long>(F), k, cfg.hidden, static_cast<long long>(n_params),
              static_cast<long long>(n_samples), epochs, S, T);
  std::fflush(stdout);

  std::ostringstream results;
  results << "{\"parameters\": " << n_params << ", \"samples\": " << n_samples << ", \"epochs\": " << epochs
          << ", \"sites\": " << S << ", \"days\": " << T << ", \"steps\": " << S * (T - k) << ", \"runs\": [";
  Net trained{nullptr};
  std::vector<double> windowed_pred, stateful_pred;
  for (std::size_t ti = 0; ti < threads.size(); ++ti) {
    const int n_threads = threads[ti];
    Net net = make_net(cfg, 42);
    TrainOptions opt;
    opt.epochs = epochs;
    opt.batch = 64;
    opt.patience = 0;
    opt.lr = 1e-3;
    opt.seed = 7;
    opt.threads = n_threads;
    const double t0 = now();
    const TrainResult tr = train(net, train_set, Samples{}, opt);
    const double train_s = now() - t0;
    const double sps = static_cast<double>(epochs) * static_cast<double>(n_samples) / train_s;

    set_threads(n_threads);
    double t1 = now();
    auto pw = rollout(net, rf, cfg, start, Rollout::Windowed);
    const double windowed_s = now() - t1;
    t1 = now();
    auto ps = rollout(net, rf, cfg, start, Rollout::Stateful);
    const double stateful_s = now() - t1;
    std::size_t predicted = 0;
    for (double v : pw) predicted += std::isfinite(v);

    std::printf("{\"side\": \"couplet\", \"threads\": %d, \"train_samples_per_s\": %.1f, \"train_s\": %.3f, "
                "\"final_loss\": %.5f, \"rollout_windowed_s\": %.3f, \"rollout_stateful_s\": %.3f, "
                "\"predicted_site_days\": %zu}\n",
                n_threads, sps, train_s, tr.history.back().train_loss, windowed_s, stateful_s, predicted);
    std::fflush(stdout);
    results << (ti ? ", " : "") << "{\"threads\": " << n_threads << ", \"train_samples_per_s\": " << sps
            << ", \"train_s\": " << train_s << ", \"final_loss\": " << tr.history.back().train_loss
            << ", \"rollout_windowed_s\": " << windowed_s << ", \"rollout_stateful_s\": " << stateful_s << "}";
    if (ti == 0) {
      trained = net;
      windowed_pred = std::move(pw);
      stateful_pred = std::move(ps);
    }
  }
  results << "]}\n";

  if (!out_dir.empty()) {
    fs::create_directories(out_dir);
    std::ofstream(out_dir / "couplet.json") << results.str();
    write_tensor(out_dir / "train_seq.f32", train_set.seq);
    write_tensor(out_dir / "train_y.f32", train_set.y);
    // Rollout inputs: x [S, T, F-1] = drivers(d), statics; lag0 [S, k] = the seeding window's target.
    const std::size_t fx = static_cast<std::size_t>(F) - 1;
    std::vector<float> x(S * T * fx), lag0(S * k);
    for (std::size_t s = 0; s < S; ++s) {
      for (std::size_t t = 0; t < T; ++t) {
        float* p = x.data() + (s * T + t) * fx;
        for (auto& d : rf.drivers) *p++ = static_cast<float>(d[s * T + t]);
        for (auto& st : rf.statics) *p++ = static_cast<float>(st[s]);
      }
      for (std::size_t t = 0; t < k; ++t) lag0[s * k + t] = static_cast<float>(rf.target[s * T + t]);
    }
    write_raw(out_dir / "rollout_x.f32", x.data(), x.size());
    write_raw(out_dir / "rollout_lag0.f32", lag0.data(), lag0.size());
    std::vector<float> pred(windowed_pred.begin(), windowed_pred.end());
    write_raw(out_dir / "couplet_windowed.f32", pred.data(), pred.size());
    pred.assign(stateful_pred.begin(), stateful_pred.end());
    write_raw(out_dir / "couplet_stateful.f32", pred.data(), pred.size());
    std::ofstream meta(out_dir / "meta.json");
    meta << "{\"samples\": " << n_samples << ", \"seq_len\": " << k << ", \"features\": " << F
         << ", \"hidden\": " << cfg.hidden << ", \"dropout\": " << cfg.dropout << ", \"lr\": " << 1e-3
         << ", \"batch\": 64, \"epochs\": " << epochs << ", \"sites\": " << S << ", \"days\": " << T
         << ", \"parameters\": " << n_params << ", \"params\": [";
    bool first = true;
    for (auto& item : trained->named_parameters()) {
      write_tensor(out_dir / ("param_" + item.key() + ".f32"), item.value());
      meta << (first ? "" : ", ") << "\"" << item.key() << "\"";
      first = false;
    }
    meta << "]}\n";
    std::fprintf(stderr, "wrote %s\n", out_dir.c_str());
  }
  return 0;
}
