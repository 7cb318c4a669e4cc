// Time zones by IANA name only. absl::LoadTimeZone also opens absolute paths and "file:" names
// as zone files: a hostile Enrollment.time_zone of "/some/fifo" would block the engine thread
// forever, and "/etc/..." reads files outside the zone database. Every zone tend loads from
// input (events, config, stored state) goes through LoadZone.
//
// Thread safety: the functions are thread-safe (absl caches loaded zones).
#ifndef TEND_BASE_TIME_ZONE_H_
#define TEND_BASE_TIME_ZONE_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tend {

inline constexpr size_t kMaxZoneNameBytes = 64;

// True when `name` can only name a zone of the system's zone database (a path relative to
// /usr/share/zoneinfo): 1-64 bytes; components of [A-Za-z0-9._+-] separated by single '/';
// no component "." or ".." or starting with '.' or '-'. The rules of tz's theory.html ("Names of
// timezones"), widened to the names tzdata ships (digits and '+' as in "Etc/GMT+8").
bool IsZoneName(absl::string_view name);

// absl::LoadTimeZone(name) for names that pass IsZoneName; false for any other name, or when the
// zone database has no such zone.
bool LoadZone(absl::string_view name, absl::TimeZone* tz);

}  // namespace tend

#endif  // TEND_BASE_TIME_ZONE_H_
