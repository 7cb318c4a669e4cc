// Fuzz target: Query/ListPatients page tokens, over a small real state directory (RocksDB in a
// temporary directory, 60 patients with index keys, as the engine leaves them). The input picks
// the request's filters and page size, then its token: either raw (base64 of the rest), or the
// rest spliced behind the valid prefix a first page returned (so the fuzzer reaches the key a
// token resumes after). Every token must be refused or followed; following next_page_token
// must end (at most one page per patient, plus the empty-result pages of sparse filters).
#include <cstdint>

#include "fuzz/quiet_protobuf.h"
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/crc32c.h"
#include "base/hash.h"
#include "base/temp_dir.h"
#include "index/patient_index.h"
#include "index/planner.h"
#include "projections/patient.h"

namespace {

using namespace tend;

constexpr int kPatients = 60;
constexpr int kPartitions = 4;

struct Fixture {
  Fixture() {
    auto dir = ScopedTempDir::Create("tend-fuzz-page-token");
    if (!dir.ok()) std::abort();
    temp = std::make_unique<ScopedTempDir>(*std::move(dir));
    auto opened = Storage::Open(temp->path() + "/db");
    if (!opened.ok()) std::abort();
    storage = *std::move(opened);
    StateBatch batch = storage->NewBatch();
    const int64_t start = 1767225600;  // 2026-01-01
    int64_t clock = start;
    for (int p = 0; p < kPatients; ++p) {
      v1::PatientState state;
      const std::string id = absl::StrCat("p", p);
      state.set_patient_id(id);
      state.set_partition(static_cast<int32_t>(Fingerprint64(id) % kPartitions));
      for (int k = 0; k <= p % 7; ++k) {
        v1::Event e;
        e.set_patient_id(id);
        e.set_event_id(absl::StrCat(id, "-", k));
        const int64_t at = start + p * 3600 + k * 86400 * (1 + p % 3);
        e.mutable_occurred_at()->set_seconds(at);
        e.mutable_recorded_at()->set_seconds(at);
        if (k == 0) {
          e.mutable_scan()->set_channel_id("pharmacy");
          e.mutable_scan()->set_staff_id(absl::StrCat("s", p % 3));
        } else if (k == 1 && p % 2 == 0) {
          e.mutable_enrollment()->set_program_id(absl::StrCat("prog", p % 4));
        } else {
          e.mutable_check_in()->set_kind(v1::CheckIn::GLUCOSE);
        }
        projections::Apply(config, e, &state);
        clock = std::max(clock, at);
      }
      batch.PutPatient(state.partition(), state, {});
      for (const std::string& key : PatientIndexKeys(state.partition(), state, config)) {
        batch.PutIndex(key);
      }
    }
    for (int32_t p = 0; p < kPartitions; ++p) {
      v1::PartitionCheckpoint cp;
      cp.set_topic("tend.events");
      cp.set_partition(p);
      cp.set_next_offset(1);
      cp.mutable_clock()->set_seconds(clock);
      batch.PutCheckpoint(cp);
    }
    batch.PutIndexParameters(PatientIndexParameters(config));
    if (!storage->Commit(&batch).ok()) std::abort();
  }
  const projections::ProjectionConfig config = projections::DefaultProjectionConfig();
  std::unique_ptr<ScopedTempDir> temp;
  std::unique_ptr<Storage> storage;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Lives for the process, like a server's state; its directory goes at exit.
  static Fixture fixture_instance;
  Fixture* fixture = &fixture_instance;
  if (size < 3) return 0;
  v1::ListPatientsRequest request;
  request.set_page_size(data[1] % 8);  // 0 (the default, 50) .. 7: several pages
  const uint8_t filters = data[2];
  if (filters & 1) request.set_stage(static_cast<v1::ChurnView::Stage>((filters >> 4) % 6));
  if (filters & 2) request.set_min_churn_risk((filters >> 4) / 15.0);
  if (filters & 4) request.set_program_id(absl::StrCat("prog", (filters >> 4) % 4));
  if (filters & 8) request.set_activated((filters >> 4) & 1);
  const std::string rest(reinterpret_cast<const char*>(data) + 3, size - 3);
  if (data[0] & 1) {
    // Behind a real token's prefix (version, query fingerprint, index kind).
    v1::ListPatientsRequest first = request;
    first.set_page_size(1);
    v1::ListPatientsResponse response;
    if (!ListPatientsPage(*fixture->storage, fixture->config, first, &response, nullptr).ok()) {
      return 0;
    }
    std::string raw;
    if (response.next_page_token().empty()) return 0;
    if (!absl::WebSafeBase64Unescape(response.next_page_token(), &raw) || raw.size() < 11) {
      std::abort();  // the server's own token must decode
    }
    // Signed with the token's CRC-32C (index/planner.h), or every crafted cursor would stop there.
    std::string crafted = raw.substr(0, 11) + rest;
    const uint32_t crc = Crc32c(crafted);
    for (int i = 3; i >= 0; --i) crafted.push_back(static_cast<char>(crc >> (8 * i)));
    request.set_page_token(absl::WebSafeBase64Escape(crafted));
  } else {
    request.set_page_token(absl::WebSafeBase64Escape(rest));
  }
  // Follow the pages: they must end.
  for (int pages = 0; !request.page_token().empty(); ++pages) {
    if (pages > 2 * kPatients + 10) std::abort();
    v1::ListPatientsResponse response;
    if (!ListPatientsPage(*fixture->storage, fixture->config, request, &response, nullptr).ok()) {
      return 0;
    }
    request.set_page_token(response.next_page_token());
  }
  return 0;
}
