#include "base/time_zone.h"

#include <string>

namespace tend {

bool IsZoneName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxZoneNameBytes) return false;
  // Files in the zone directory that are not zones of the database: the host's own zone (a
  // replay elsewhere would read another), and the POSIX rules template.
  if (name == "localtime" || name == "posixrules") return false;
  size_t start = 0;  // of the current component
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '/') {
      const absl::string_view part = name.substr(start, i - start);
      if (part.empty() || part.front() == '.' || part.front() == '-') return false;
      start = i + 1;
      continue;
    }
    const char c = name[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '+' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool LoadZone(absl::string_view name, absl::TimeZone* tz) {
  return IsZoneName(name) && absl::LoadTimeZone(std::string(name), tz);
}

}  // namespace tend
