#include "tools/remote.h"

#include <grpcpp/grpcpp.h>

#include <ostream>
#include <unordered_set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/status.h"
#include "base/time.h"
#include "index/planner.h"
#include "services/query_router.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {
namespace {

struct Client {
  std::unique_ptr<v1::Query::Stub> stub;
  std::string authorization;
};

absl::StatusOr<Client> Connect(const RemoteOptions& remote) {
  auto auth = MakeClientAuth(remote.security, remote.target);
  if (!auth.ok()) return auth.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);  // a page of 1,000 views is a few MiB
  return Client{v1::Query::NewStub(grpc::CreateCustomChannel(remote.target, auth->credentials, args)),
                auth->authorization};
}

std::string Trailer(const grpc::ClientContext& context, const char* key) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(key);
  return it == trailers.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

bool Stopped(const RemoteOptions& remote) {
  return remote.stop != nullptr && remote.stop->load();
}

absl::Status Cancelled() { return absl::CancelledError("stopped (SIGINT or SIGTERM)"); }

// Makes `call(context)` until it answers other than UNAVAILABLE (or RESOURCE_EXHAUSTED with a
// retry hint: an instance at its bound on cohort reads), waiting between tries as the server
// asks (or a second) for at most `retry_for`.
absl::Status Call(const RemoteOptions& remote, const Client& client, absl::Duration deadline,
                  const std::function<grpc::Status(grpc::ClientContext*)>& call,
                  const std::function<void(const grpc::ClientContext&)>& on_ok,
                  std::ostream& progress) {
  const absl::Time give_up = absl::Now() + remote.retry_for;
  std::string said;  // the last wait reported, and when
  absl::Time said_at = absl::InfinitePast();
  for (;;) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    if (!client.authorization.empty()) context.AddMetadata("authorization", client.authorization);
    const grpc::Status s = call(&context);
    if (s.ok()) {
      on_ok(context);
      return absl::OkStatus();
    }
    const std::string what = absl::StrCat(remote.target, ": ", s.error_message());
    // gRPC's own RESOURCE_EXHAUSTED (a message too large, no thread free) carries no hint.
    const bool retry = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                        !Trailer(context, kRetryPushbackMetadata).empty());
    if (!retry || absl::Now() >= give_up) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          retry ? absl::StrCat(what, " (still, after ",
                                               absl::FormatDuration(remote.retry_for), ")")
                                : what);
    }
    int64_t wait_ms = 1000;
    if (!absl::SimpleAtoi(Trailer(context, kRetryPushbackMetadata), &wait_ms) || wait_ms < 0) {
      wait_ms = 1000;
    }
    // Said once, and again every 10 s while it lasts.
    if (what != said || absl::Now() - said_at >= absl::Seconds(10)) {
      progress << "waiting: " << what << std::endl;
      said = what;
      said_at = absl::Now();
    }
    const absl::Time wake = absl::Now() + absl::Milliseconds(std::min<int64_t>(wait_ms, 10'000));
    while (absl::Now() < wake) {
      if (Stopped(remote)) return Cancelled();
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
}

// "partition:offset,..." into `offsets`.
void ReadOffsets(const std::string& trailer, std::map<int32_t, int64_t>* offsets) {
  for (absl::string_view item : absl::StrSplit(trailer, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits(':', 1));
    int32_t p = 0;
    int64_t o = 0;
    if (absl::SimpleAtoi(kv.first, &p) && absl::SimpleAtoi(kv.second, &o)) (*offsets)[p] = o;
  }
}

}  // namespace

absl::StatusOr<v1::CohortStats> FetchCohortStats(const RemoteOptions& remote,
                                                 std::optional<absl::Time> as_of,
                                                 std::ostream& progress) {
  auto client = Connect(remote);
  if (!client.ok()) return client.status();
  v1::CohortStatsRequest request;
  if (as_of) *request.mutable_as_of() = ToProtoTime(*as_of);
  v1::CohortStatsResponse response;
  TEND_RETURN_IF_ERROR(Call(
      remote, *client, absl::Minutes(10),
      [&](grpc::ClientContext* context) {
        return client->stub->CohortStats(context, request, &response);
      },
      [&](const grpc::ClientContext& context) {
        progress << "cohort statistics of " << response.stats().patients() << " patients from "
                 << Trailer(context, kAnsweredByMetadata) << std::endl;
      },
      progress));
  return std::move(*response.mutable_stats());
}

absl::Status ForEachRemotePatient(const RemoteOptions& remote, std::optional<absl::Time> as_of,
                                  const std::function<absl::Status(const v1::PatientView&)>& fn,
                                  std::map<int32_t, int64_t>* offsets, std::ostream& progress) {
  auto client = Connect(remote);
  if (!client.ok()) return client.status();
  v1::ListPatientsRequest request;
  request.set_page_size(1000);
  if (as_of) *request.mutable_as_of() = ToProtoTime(*as_of);
  // A patient's index keys stay in its partition, and the walk takes the partitions in order:
  // a patient given before can come again only while the walk is still in its partition. So the
  // ids given are kept only since the walk entered its current partition.
  std::unordered_set<std::string> given;
  int32_t partition = 0;
  int64_t patients = 0, pages = 0;
  absl::Time last_progress = absl::Now();
  for (;;) {
    if (Stopped(remote)) return Cancelled();
    v1::ListPatientsResponse page;
    TEND_RETURN_IF_ERROR(Call(
        remote, *client, absl::Minutes(1),
        [&](grpc::ClientContext* context) {
          page.Clear();
          return client->stub->ListPatients(context, request, &page);
        },
        [&](const grpc::ClientContext& context) {
          if (offsets != nullptr) ReadOffsets(Trailer(context, kPartitionOffsetsMetadata), offsets);
        },
        progress));
    ++pages;
    int32_t next_partition = partition;
    if (!page.next_page_token().empty()) {
      v1::ListPatientsRequest next = request;
      next.set_page_token(page.next_page_token());
      auto p = ListPatientsTokenPartition(next);
      if (!p.ok()) {
        return absl::DataLossError(absl::StrCat(remote.target, " sent a page token this build "
                                                "cannot read: ", p.status().message()));
      }
      next_partition = *p;
    }
    std::vector<std::string> page_ids;
    for (const v1::PatientView& view : page.patients()) {
      page_ids.push_back(view.patient_id());
      if (given.count(view.patient_id()) > 0) continue;
      TEND_RETURN_IF_ERROR(fn(view));
      ++patients;
    }
    if (next_partition != partition) {
      // Only this page can hold patients of the partition the walk goes on in.
      given.clear();
      partition = next_partition;
    }
    given.insert(page_ids.begin(), page_ids.end());
    if (absl::Now() - last_progress >= absl::Seconds(5)) {
      progress << "read " << patients << " patients in " << pages << " pages (partition "
               << partition << ")" << std::endl;
      last_progress = absl::Now();
    }
    if (page.next_page_token().empty()) return absl::OkStatus();
    request.set_page_token(page.next_page_token());
  }
}

}  // namespace tend
