// base/histogram.h: buckets by inclusive upper bound, exact counts under concurrent writers.
#include "base/histogram.h"

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

namespace tend {
namespace {

TEST_CASE("a histogram puts each observation in the first bucket whose bound is at least it") {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 9.0, 10.0, 11.0, 1e9}) h.Observe(v);
  const Histogram::Snapshot s = h.Read();
  CHECK(s.counts == std::vector<uint64_t>{2, 2, 2, 2});  // the last: above 10 (+Inf)
  CHECK(s.count() == 8);
  CHECK(s.sum == Approx(0.05 + 0.1 + 0.5 + 1 + 9 + 10 + 11 + 1e9));
  CHECK(s.bounds == std::vector<double>{0.1, 1, 10});
}

TEST_CASE("a histogram counts every observation of concurrent writers") {
  Histogram h(Histogram::SecondsBounds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 100'000; ++i) h.Observe(0.001);
    });
  }
  for (auto& t : threads) t.join();
  const Histogram::Snapshot s = h.Read();
  CHECK(s.count() == 400'000);
  CHECK(s.sum == Approx(400.0));
}

}  // namespace
}  // namespace tend
