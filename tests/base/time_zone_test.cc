// base/time_zone.h: zones by IANA name only - never a path, a URL or a file outside the zone
// database (a FIFO there used to block the engine thread for good).
#include "base/time_zone.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "tests/temp_dir.h"

namespace tend {
namespace {

TEST_CASE("IANA zone names load, but paths, URLs and odd names do not", "[base]") {
  absl::TimeZone tz;
  for (const char* name : {"Asia/Shanghai", "UTC", "Etc/GMT+8", "Etc/GMT-14", "EST5EDT",
                           "America/Argentina/ComodRivadavia", "America/Port-au-Prince"}) {
    INFO(name);
    CHECK(IsZoneName(name));
    CHECK(LoadZone(name, &tz));
  }
  for (const char* name :
       {"", "/usr/share/zoneinfo/Asia/Tokyo", "file:/usr/share/zoneinfo/Asia/Tokyo",
        "../../../etc/localtime", "Asia/../Asia/Tokyo", "Asia/./Tokyo", "Asia//Tokyo", "Asia/",
        "/Asia/Tokyo", ".hidden", "-x", "Asia/Tokyo\n", "Asia\\Tokyo", "Asia/Tokyo ",
        "localtime:", "http://example.com/zone", "localtime", "posixrules"}) {
    INFO(name);
    CHECK_FALSE(IsZoneName(name));
    CHECK_FALSE(LoadZone(name, &tz));
  }
  CHECK(IsZoneName(std::string(kMaxZoneNameBytes, 'A')));
  CHECK_FALSE(IsZoneName(std::string(kMaxZoneNameBytes + 1, 'A')));
  // Well formed, but not a zone of the database.
  CHECK(IsZoneName("Mars/Olympus_Mons"));
  CHECK_FALSE(LoadZone("Mars/Olympus_Mons", &tz));
}

TEST_CASE("a FIFO named as a zone is refused without being opened", "[base]") {
  testing::TempDir dir;
  const std::string fifo = dir.Sub("zone");
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  absl::TimeZone tz;
  // absl::LoadTimeZone(fifo) would block here until a writer came.
  CHECK_FALSE(LoadZone(fifo, &tz));
  CHECK_FALSE(LoadZone("file:" + fifo, &tz));
}

}  // namespace
}  // namespace tend
