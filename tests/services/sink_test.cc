// The ReminderSink contract over real gRPC (port 0): the reference sink dedupes on command_id
// across restarts, and the client delivers every command exactly once to it even when the sink
// is down for a while.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/server.h"
#include "dispatch/sink_client.h"
#include "services/sink_service.h"
#include "tests/testing.h"

namespace tend {
namespace {

v1::ReminderCommand Command(const std::string& id, absl::Duration ttl = absl::Minutes(5)) {
  v1::ReminderCommand c;
  c.set_command_id(id);
  c.set_patient_id("p-1");
  c.set_template_id("welcome");
  c.set_automated(true);
  c.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(absl::Now() + ttl));
  return c;
}

std::unique_ptr<SinkClient> Client(int port) {
  SinkClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", port);
  options.initial_backoff = absl::Milliseconds(50);
  options.max_backoff = absl::Milliseconds(400);
  options.rpc_timeout = absl::Milliseconds(500);
  auto c = SinkClient::Create(options);
  REQUIRE(c.ok());
  return *std::move(c);
}

TEST_CASE("the sink accepts a command once and says so on a repeat, across restarts",
          "[integration]") {
  testing::TempDir dir;
  const std::string out = dir.Sub("deliveries.jsonl");
  std::atomic<bool> stop{false};
  {
    auto sink = SinkService::Create(out);
    REQUIRE(sink.ok());
    auto server = StartGrpcServer("127.0.0.1:0", {sink->get()});
    REQUIRE(server.ok());
    auto client = Client(server->port);
    CHECK(client->Deliver(Command("c1"), stop).outcome == DeliveryOutcome::kDelivered);
    CHECK(client->Deliver(Command("c2"), stop).outcome == DeliveryOutcome::kDelivered);
    CHECK(client->Deliver(Command("c1"), stop).outcome == DeliveryOutcome::kDuplicate);
    CHECK((*sink)->accepted() == 2);
    CHECK((*sink)->duplicates() == 1);
    v1::ReminderCommand no_id = Command("");
    CHECK(client->Deliver(no_id, stop).outcome == DeliveryOutcome::kRejected);
    CHECK(client->Deliver(Command("old", -absl::Seconds(1)), stop).outcome ==
          DeliveryOutcome::kExpired);
    server->server->Shutdown();
  }
  // A new sink on the same file knows what it accepted.
  auto sink = SinkService::Create(out);
  REQUIRE(sink.ok());
  CHECK((*sink)->accepted() == 2);
  auto server = StartGrpcServer("127.0.0.1:0", {sink->get()});
  REQUIRE(server.ok());
  CHECK(Client(server->port)->Deliver(Command("c2"), stop).outcome == DeliveryOutcome::kDuplicate);
  CHECK(Client(server->port)->Deliver(Command("c3"), stop).outcome == DeliveryOutcome::kDelivered);
  CHECK((*sink)->accepted() == 3);
  server->server->Shutdown();
}

TEST_CASE("the sink refuses a damaged output file by line, and mends a line cut short",
          "[integration]") {
  testing::TempDir dir;
  const std::string out = dir.Sub("deliveries.jsonl");
  std::atomic<bool> stop{false};
  {
    auto sink = SinkService::Create(out);
    REQUIRE(sink.ok());
    auto server = StartGrpcServer("127.0.0.1:0", {sink->get()});
    REQUIRE(server.ok());
    CHECK(Client(server->port)->Deliver(Command("c1"), stop).outcome ==
          DeliveryOutcome::kDelivered);
    CHECK(Client(server->port)->Deliver(Command("c2"), stop).outcome ==
          DeliveryOutcome::kDelivered);
    server->server->Shutdown();
  }
  auto read = [&] {
    std::ifstream in(out, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string good = read();

  SECTION("a garbage line: the sink does not start, and says which line") {
    std::ofstream(out, std::ios::binary) << good.substr(0, good.find('\n') + 1) << "garbage\n"
                                         << good.substr(good.find('\n') + 1);
    auto sink = SinkService::Create(out);
    CHECK(sink.status().code() == absl::StatusCode::kDataLoss);
    CHECK_THAT(std::string(sink.status().message()),
               Catch::StartsWith(out + ":2: not a tend.v1.ReminderCommand"));
    std::ofstream(out, std::ios::binary) << good << "{}\n";  // JSON, but no command id
    sink = SinkService::Create(out);
    CHECK_THAT(std::string(sink.status().message()),
               Catch::StartsWith(out + ":3: not a tend.v1.ReminderCommand (command_id: is required"));
  }

  SECTION("a last line cut short by a crash is removed before appending") {
    std::ofstream(out, std::ios::binary) << good << R"({"commandId":"c3","pat)";
    auto sink = SinkService::Create(out);
    REQUIRE(sink.ok());
    CHECK((*sink)->accepted() == 2);
    CHECK(read() == good);
    auto server = StartGrpcServer("127.0.0.1:0", {sink->get()});
    REQUIRE(server.ok());
    CHECK(Client(server->port)->Deliver(Command("c3"), stop).outcome ==
          DeliveryOutcome::kDelivered);
    server->server->Shutdown();
    sink->reset();
    // The appended line stands on its own: a restart knows all three.
    auto again = SinkService::Create(out);
    REQUIRE(again.ok());
    CHECK((*again)->accepted() == 3);
  }
}

TEST_CASE("the sink refuses hostile commands by field, and keeps its file to its owner",
          "[integration]") {
  testing::TempDir dir;
  const std::string out = dir.Sub("deliveries.jsonl");
  auto sink = SinkService::Create(out, /*keep_commands=*/false);
  REQUIRE(sink.ok());
  auto server = StartGrpcServer("127.0.0.1:0", {sink->get()});
  REQUIRE(server.ok());
  auto stub = v1::ReminderSink::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server->port), grpc::InsecureChannelCredentials()));
  auto deliver = [&](const v1::ReminderCommand& command) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::DeliverRequest request;
    *request.mutable_command() = command;
    v1::DeliverResponse response;
    return stub->Deliver(&context, request, &response);
  };
  auto refused = [&](const v1::ReminderCommand& command) {
    grpc::Status s = deliver(command);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    return s.error_message();
  };
  CHECK(refused(Command(std::string(129, 'c'))) == "command.command_id: 129 bytes (at most 128)");
  CHECK(refused(Command(std::string("c\0d", 3))) ==
        "command.command_id: holds a control character");
  CHECK(refused(Command("c\x1b[2J")) == "command.command_id: holds a control character");
  v1::ReminderCommand many = Command("many");
  for (int i = 0; i <= kMaxSinkParameters; ++i) (*many.mutable_parameters())[absl::StrCat(i)] = "v";
  CHECK(refused(many) == "command.parameters: 257 entries (at most 256)");
  v1::ReminderCommand large = Command("large");
  (*large.mutable_parameters())["text"] = std::string(kMaxSinkCommandBytes, 'x');
  CHECK_THAT(refused(large), Catch::StartsWith("command: 655") &&
                                 Catch::EndsWith(" bytes serialized (at most 65536)"));
  // Refused the same way up to gRPC's own bound, so the dispatcher records it as rejected
  // instead of retrying it until it expires.
  (*large.mutable_parameters())["text"] = std::string(3 << 20, 'x');
  CHECK_THAT(refused(large), Catch::StartsWith("command: 31457"));
  CHECK(deliver(Command(std::string(128, 'c'))).ok());
  CHECK((*sink)->accepted() == 1);
  CHECK((*sink)->commands().empty());  // not kept: a long-running sink holds only their ids
  struct stat st;
  REQUIRE(stat(out.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  server->server->Shutdown();
}

TEST_CASE("the sink down for a while, then up: everything delivered, once each", "[integration]") {
  // Find a free port, then leave it closed while the client starts delivering.
  int port;
  {
    auto probe = SinkService::Create("");
    REQUIRE(probe.ok());
    auto server = StartGrpcServer("127.0.0.1:0", {probe->get()});
    REQUIRE(server.ok());
    port = server->port;
    server->server->Shutdown();
  }
  auto client = Client(port);
  std::atomic<bool> stop{false};
  constexpr int kCommands = 40;
  std::vector<DeliveryResult> results(kCommands);
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = t; i < kCommands; i += 4) {
        results[i] = client->Deliver(Command(absl::StrCat("cmd-", i)), stop);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the sink is down
  auto sink = SinkService::Create("");
  REQUIRE(sink.ok());
  auto server = StartGrpcServer(absl::StrCat("127.0.0.1:", port), {sink->get()});
  REQUIRE(server.ok());
  for (auto& s : senders) s.join();
  int retried = 0;
  for (const auto& r : results) {
    CHECK(r.outcome == DeliveryOutcome::kDelivered);
    retried += r.attempts > 1;
  }
  CHECK(retried >= 4);  // the first command of each sender met the sink down
  CHECK((*sink)->accepted() == kCommands);
  CHECK((*sink)->duplicates() == 0);
  server->server->Shutdown();
}

}  // namespace
}  // namespace tend
