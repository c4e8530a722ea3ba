// A parallel loop over numbered tasks for the plugins' pure code: `threads` workers take task numbers
// from a shared counter. Callers keep results independent of the schedule by writing each task's result
// to its own slot and combining the slots in task order. The first exception stops the remaining tasks
// and is rethrown on the calling thread. Header-only.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace couplet::parallel {

/// Runs task(i) for i in [0, n) on up to `threads` threads (the caller's thread is one of them).
/// `between` (optional) runs on the calling thread's worker after each of its tasks, e.g. to check
/// for cancellation; it may throw.
inline void for_each(std::size_t n, int threads, const std::function<void(std::size_t)>& task,
                     const std::function<void()>& between = {}) {
  const std::size_t workers = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1, threads)));
  if (workers <= 1) {
    for (std::size_t i = 0; i < n; ++i) {
      task(i);
      if (between) between();
    }
    return;
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex mu;
  auto work = [&](bool caller) {
    for (;;) {
      if (stop.load(std::memory_order_relaxed)) return;
      const std::size_t i = next.fetch_add(1);
      if (i >= n) return;
      try {
        task(i);
        if (caller && between) between();
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!error) error = std::current_exception();
        stop = true;
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  try {
    for (std::size_t t = 1; t < workers; ++t) pool.emplace_back(work, false);
  } catch (...) {  // no thread for the rest: stop the started ones before the locals they use go away
    stop = true;
    for (auto& th : pool) th.join();
    throw;
  }
  work(true);
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace couplet::parallel
