#include <couplet/framework/hash.hpp>

#include <boost/uuid/detail/sha1.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace couplet::framework {

namespace fs = std::filesystem;

struct Hasher::Impl {
  boost::uuids::detail::sha1 sha;
};

Hasher::Hasher() : impl_(new Impl) {}
Hasher::~Hasher() { delete impl_; }

Hasher& Hasher::add(const std::string& field) {
  const std::string len = std::to_string(field.size()) + ":";
  impl_->sha.process_bytes(len.data(), len.size());
  impl_->sha.process_bytes(field.data(), field.size());
  return *this;
}

std::string Hasher::hex() {
  boost::uuids::detail::sha1::digest_type d;
  impl_->sha.get_digest(d);
  char buf[41];
  for (int i = 0; i < 5; ++i) std::snprintf(buf + 8 * i, 9, "%08x", d[i]);
  return std::string(buf, 40);
}

namespace {
std::string stamp(const fs::path& f) {
  std::error_code ec;
  auto size = fs::file_size(f, ec);
  auto t = fs::last_write_time(f, ec);
  return std::to_string(size) + "@" + std::to_string(t.time_since_epoch().count());
}
}  // namespace

std::string path_fingerprint(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return "missing";
  if (!fs::is_directory(p, ec)) return stamp(p);
  std::vector<std::string> entries;
  for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file()) entries.push_back(fs::relative(it->path(), p).string() + "=" + stamp(it->path()));
  std::sort(entries.begin(), entries.end());
  Hasher h;
  for (auto& e : entries) h.add(e);
  return "dir:" + std::to_string(entries.size()) + ":" + h.hex();
}

}  // namespace couplet::framework
