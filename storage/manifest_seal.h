// The MANIFEST seal: tend's own record of how long the state directory's RocksDB MANIFEST was
// when tend last saw it whole, so that a MANIFEST cut short or rolled back is refused at open.
//
// RocksDB recovers a MANIFEST up to its last complete record: a MANIFEST cut between two records
// opens as the older version it describes, without an error, and the SST files of the lost edits
// lie unreferenced beside it (the engine would then delete them). The seal closes that gap.
//
// On-disk format (version 1), the file `tend-manifest-seal` in the state directory, ASCII:
//   "tend-manifest-seal 1\n" "MANIFEST-<number> <bytes>\n"
// written whole to `tend-manifest-seal.tmp`, fsynced and renamed over the old one. Written by the
// engine (the directory's only writer) after it opens the directory, after flushes and
// compactions (RocksDB has synced the MANIFEST record by then; at most every 5 s, so the seal
// may lag the MANIFEST, never lead it), and after it closes it cleanly.
//
// The check, before any open (engine and readers): no seal -> nothing to check here (a directory
// from before the seal; the engine writes one at its open), unless the directory's meta family
// says an engine sealed it (storage.cc RefuseLostSeal: then the seal was lost, kDataLoss). CURRENT names a MANIFEST with a higher
// number than the seal -> fine (RocksDB started a new one, and tend had not recorded it yet).
// The same MANIFEST at least as long as sealed -> fine (it only grows). Shorter, a lower number,
// or a seal or CURRENT that cannot be read -> kDataLoss naming the file.
#ifndef TEND_STORAGE_MANIFEST_SEAL_H_
#define TEND_STORAGE_MANIFEST_SEAL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace tend {

inline constexpr char kManifestSealFile[] = "tend-manifest-seal";

// Records that `dir`'s MANIFEST `manifest_name` ("MANIFEST-000012") is `bytes` long.
absl::Status WriteManifestSeal(const std::string& dir, const std::string& manifest_name,
                               uint64_t bytes);

// Records the MANIFEST that CURRENT names, at its size on disk (after the directory is closed).
absl::Status SealCurrentManifest(const std::string& dir);

// The check above. `what_to_do` ends a kDataLoss message.
absl::Status CheckManifestSeal(const std::string& dir, const std::string& what_to_do);

}  // namespace tend

#endif  // TEND_STORAGE_MANIFEST_SEAL_H_
