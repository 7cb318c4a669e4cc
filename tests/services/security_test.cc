// The front door over real gRPC with real TLS (certificates made by openssl for the test):
// a client without TLS, without a token, or with another role's token is refused; the right one
// works; mutual TLS refuses a client without a certificate; the dispatcher's client presents
// its TLS and token to a sink; reflection is off unless asked for.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "auth/auth.h"
#include "dispatch/sink_client.h"
#include "services/ingest_service.h"
#include "services/query_service.h"
#include "services/server.h"
#include "services/sink_service.h"
#include "storage/storage.h"
#include "tend/v1/cluster.pb.h"
#include "tests/testing.h"

namespace tend {
namespace {

using testing::ExitCode;
using testing::LoggedPort;
using testing::ReadFile;

// A CA, a server certificate for localhost and 127.0.0.1, and a client certificate, in `dir`.
void MakeCertificates(const std::string& dir) {
  const std::string script = absl::StrCat(
      "set -e; cd '", dir, "'; ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';",
      "openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=tend-test-ca;",
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext;",
      "openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost;",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile san.ext -out server.pem;",
      "openssl req $ec -keyout client.key -out client.csr -subj /CN=dispatcher;",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-out client.pem;",
      "chmod 600 *.key");
  const int rc = std::system(absl::StrCat("(", script, ") > '", dir, "/openssl.log' 2>&1").c_str());
  INFO(ReadFile(dir + "/openssl.log"));
  REQUIRE(rc == 0);
}

std::string Token(char c) { return std::string(40, c); }

void WriteSecret(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
}


// The status of a unary call to `method` with an empty request, over `channel`.
grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                  const std::string& token = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::CompletionQueue cq;
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  auto call = stub.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  REQUIRE(cq.Next(&tag, &ok));
  return status;
}

std::shared_ptr<grpc::Channel> TlsChannel(const std::string& dir, int port, bool client_cert) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(dir + "/ca.pem");
  if (client_cert) {
    o.pem_cert_chain = ReadFile(dir + "/client.pem");
    o.pem_private_key = ReadFile(dir + "/client.key");
  }
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(o));
}

constexpr char kGetPatient[] = "/tend.v1.Query/GetPatient";
constexpr char kAppend[] = "/tend.v1.Ingest/Append";
constexpr char kAppendBatch[] = "/tend.v1.Ingest/AppendBatch";
constexpr char kDeliver[] = "/tend.v1.ReminderSink/Deliver";
constexpr char kReflection[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

TEST_CASE("while the state directory is refused, Query answers UNAVAILABLE with the reason only "
          "to callers with a query token",
          "[integration]") {
  auto authorizer = Authorizer::Parse(
      absl::StrCat("query ", Token('q'), "\ningest ", Token('i'), "\n"), "tokens");
  REQUIRE(authorizer.ok());
  UnavailableQueryService unavailable(
      "this engine's state directory is refused: /var/lib/tend/state: IO error: lock held");
  unavailable.set_authorizer(std::shared_ptr<const Authorizer>(std::move(*authorizer)));
  auto server = StartGrpcServer("127.0.0.1:0", {&unavailable});
  REQUIRE(server.ok());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port),
                                     grpc::InsecureChannelCredentials());
  for (const std::string& token : {std::string(), Token('x'), Token('i')}) {
    const grpc::Status s = Call(channel, kGetPatient, token);
    INFO(s.error_message());
    CHECK((s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
           s.error_code() == grpc::StatusCode::PERMISSION_DENIED));
    CHECK(s.error_message().find("/var/lib/tend") == std::string::npos);
  }
  const grpc::Status s = Call(channel, kGetPatient, Token('q'));
  CHECK(s.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(s.error_message().find("state directory is refused") != std::string::npos);
  server->server->Shutdown();
}

TEST_CASE("TLS and role tokens at the front door", "[integration]") {
  testing::TempDir dir;
  MakeCertificates(dir.path());
  const std::string tokens = dir.Sub("tokens");
  WriteSecret(tokens, absl::StrCat("ingest ", Token('i'), "\nquery ", Token('q'), "\ndeliver ",
                                   Token('d'), "\nadmin ", Token('a'), "\n"));
  auto broker = testing::StartBroker(1);
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  auto storage = Storage::Open(dir.Sub("state"));
  REQUIRE(storage.ok());
  IngestService ingest(producer->get(), "tend.events");
  QueryService query(storage->get(), projections::DefaultProjectionConfig());
  auto sink = SinkService::Create("");
  REQUIRE(sink.ok());

  ServerSecurity security;
  security.tls_cert = dir.Sub("server.pem");
  security.tls_key = dir.Sub("server.key");
  security.tokens = tokens;
  SECTION("TLS with tokens") {
    auto auth = MakeServerAuth(security, "127.0.0.1:0");
    REQUIRE(auth.ok());
    ingest.set_authorizer(auth->authorizer);
    query.set_authorizer(auth->authorizer);
    (*sink)->set_authorizer(auth->authorizer);
    ServerOptions server_options;
    server_options.credentials = auth->credentials;
    auto server = StartGrpcServer("127.0.0.1:0", {&ingest, &query, sink->get()}, server_options);
    REQUIRE(server.ok());
    auto tls = TlsChannel(dir.path(), server->port, false);

    // Plaintext to a TLS port: no connection at all.
    auto plain = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port),
                                     grpc::InsecureChannelCredentials());
    CHECK(Call(plain, kGetPatient, Token('q')).error_code() == grpc::StatusCode::UNAVAILABLE);
    // TLS without a token, with an unknown one, with another role's.
    CHECK(Call(tls, kGetPatient).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(Call(tls, kGetPatient, Token('x')).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(Call(tls, kGetPatient, Token('i')).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(Call(tls, kAppend, Token('q')).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(Call(tls, kDeliver, Token('q')).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(Call(tls, kAppendBatch).error_code() == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(Call(tls, kAppendBatch, Token('q')).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(Call(tls, kAppendBatch, Token('i')).ok());  // an empty batch: an empty answer
    // The right role gets through to the service's own checks (an empty request is invalid).
    CHECK(Call(tls, kGetPatient, Token('q')).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(Call(tls, kAppend, Token('i')).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(Call(tls, kDeliver, Token('d')).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    // Admin may call everything.
    CHECK(Call(tls, kGetPatient, Token('a')).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(Call(tls, kDeliver, Token('a')).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    // Reflection was not asked for.
    CHECK(Call(tls, kReflection, Token('a')).error_code() == grpc::StatusCode::UNIMPLEMENTED);

    // The dispatcher's client: TLS to the sink and the deliver token.
    const std::string token_file = dir.Sub("deliver.token");
    WriteSecret(token_file, Token('d') + "\n");
    SinkClientOptions o;
    o.target = absl::StrCat("127.0.0.1:", server->port);
    o.security.tls_ca = dir.Sub("ca.pem");
    o.security.token_file = token_file;
    auto client = SinkClient::Create(o);
    REQUIRE(client.ok());
    v1::ReminderCommand cmd;
    cmd.set_command_id("c-1");
    cmd.set_patient_id("p-1");
    cmd.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Minutes(5)));
    CHECK((*client)->Attempt(cmd).outcome == DeliveryOutcome::kDelivered);
    WriteSecret(token_file, Token('q') + "\n");  // a query token cannot deliver
    auto wrong = SinkClient::Create(o);
    REQUIRE(wrong.ok());
    const DeliveryResult refused = (*wrong)->Attempt(cmd);
    CHECK(refused.outcome == DeliveryOutcome::kFailed);
    CHECK_THAT(refused.last_error, Catch::StartsWith("7: this call needs a token of role deliver"));
    CHECK((*sink)->accepted() == 1);
    server->server->Shutdown();
  }

  SECTION("mutual TLS refuses a client without a certificate") {
    security.tls_client_ca = dir.Sub("ca.pem");
    auto auth = MakeServerAuth(security, "127.0.0.1:0");
    REQUIRE(auth.ok());
    query.set_authorizer(auth->authorizer);
    ServerOptions server_options;
    server_options.credentials = auth->credentials;
    server_options.reflection = true;
    auto server = StartGrpcServer("127.0.0.1:0", {&query}, server_options);
    REQUIRE(server.ok());
    CHECK(Call(TlsChannel(dir.path(), server->port, false), kGetPatient, Token('q'))
              .error_code() == grpc::StatusCode::UNAVAILABLE);
    auto mutual = TlsChannel(dir.path(), server->port, true);
    CHECK(Call(mutual, kGetPatient, Token('q')).error_code() ==
          grpc::StatusCode::INVALID_ARGUMENT);
    // Asked for: reflection answers (it has no token check).
    CHECK(Call(mutual, kReflection).error_code() != grpc::StatusCode::UNIMPLEMENTED);
    server->server->Shutdown();
  }
}

int Stop(pid_t pid) {
  REQUIRE(kill(pid, SIGTERM) == 0);
  return ExitCode(pid);
}

int64_t Lines(const std::string& path) {
  const std::string text = ReadFile(path);
  return std::count(text.begin(), text.end(), '\n');
}

TEST_CASE("the tend engine and tend sink binaries serve what their security flags say, and the "
          "dispatcher reaches a mutual-TLS sink with its token",
          "[integration]") {
  testing::TempDir dir;
  MakeCertificates(dir.path());
  const std::string tokens = dir.Sub("tokens");
  WriteSecret(tokens, absl::StrCat("ingest ", Token('i'), "\nquery ", Token('q'), "\ndeliver ",
                                   Token('d'), "\n"));
  const std::string deliver_token = dir.Sub("deliver.token");
  WriteSecret(deliver_token, Token('d') + "\n");
  const std::string kafka_config = dir.Sub("kafka.properties");
  WriteSecret(kafka_config, "# what a SASL setup would hold\nclient.id=tend-secure-test\n");
  const std::string rules = dir.Sub("rules.yaml");
  std::ofstream(rules) << R"(
rules:
  - id: welcome
    version: 1
    trigger: {event: {kind: scan}}
    action: {task: {template_id: welcome-call}}
    policy: {category: CLINICAL, priority: 40, ttl: 24h}
)";
  auto broker = testing::StartBroker(4);
  auto producer = Producer::Create({{"bootstrap.servers", broker->bootstrap()}});
  REQUIRE(producer.ok());
  constexpr int kPatients = 20;
  testing::ProduceAll(producer->get(), "tend.events", testing::RecentScans(kPatients));

  // The sink: TLS, client certificates required, tokens.
  const std::string sink_log = dir.Sub("sink.log");
  const std::string sink_out = dir.Sub("sink.jsonl");
  const pid_t sink = testing::SpawnTend(
      {"sink", "--listen", "127.0.0.1:0", "--out", sink_out, "--tls-cert", dir.Sub("server.pem"),
       "--tls-key", dir.Sub("server.key"), "--tls-client-ca", dir.Sub("ca.pem"), "--tokens",
       tokens},
      sink_log);
  const int sink_port = LoggedPort(sink_log, "ReminderSink on port ");
  // The engine: TLS and tokens on its gRPC port; the dispatcher presents its certificate and the
  // deliver token to the sink; Kafka settings from a properties file.
  const std::string engine_log = dir.Sub("engine.log");
  const std::vector<std::string> engine_args = {
      "engine", "--brokers", broker->bootstrap(), "--db", dir.Sub("state"),
      "--grpc-listen", "127.0.0.1:0", "--tls-cert", dir.Sub("server.pem"), "--tls-key",
      dir.Sub("server.key"), "--tokens", tokens, "--rules", rules, "--tick-interval-s", "0",
      "--commit-interval-ms", "20", "--kafka-config", kafka_config,
      "--sink", absl::StrCat("127.0.0.1:", sink_port), "--sink-tls-ca", dir.Sub("ca.pem"),
      "--sink-tls-cert", dir.Sub("client.pem"), "--sink-tls-key", dir.Sub("client.key"),
      "--sink-token-file", deliver_token};
  const pid_t engine = testing::SpawnTend(engine_args, engine_log);
  const int engine_port = LoggedPort(engine_log, "listening on port ");

  auto tls = TlsChannel(dir.path(), engine_port, false);
  auto plain = grpc::CreateChannel(absl::StrCat("127.0.0.1:", engine_port),
                                   grpc::InsecureChannelCredentials());
  CHECK(Call(plain, kGetPatient, Token('q')).error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(Call(tls, kGetPatient).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(Call(tls, kGetPatient, Token('i')).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(Call(tls, kAppend, Token('q')).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(Call(tls, kGetPatient, Token('q')).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Call(tls, kAppend, Token('i')).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Call(tls, kReflection, Token('q')).error_code() == grpc::StatusCode::UNIMPLEMENTED);

  // Every welcome task reaches the mutual-TLS sink through the dispatcher.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (Lines(sink_out) < kPatients && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  INFO(ReadFile(engine_log));
  CHECK(Lines(sink_out) == kPatients);
  // The sink itself: no client certificate, no connection; a certificate with another role's
  // token, refused.
  CHECK(Call(TlsChannel(dir.path(), sink_port, false), kDeliver, Token('d')).error_code() ==
        grpc::StatusCode::UNAVAILABLE);
  auto mutual = TlsChannel(dir.path(), sink_port, true);
  CHECK(Call(mutual, kDeliver, Token('q')).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(Call(mutual, kDeliver, Token('d')).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Stop(engine) == 0);
  CHECK(Stop(sink) == 0);
  CHECK_THAT(ReadFile(engine_log), !Catch::Contains(Token('q')));

  // A Kafka properties file others may read is refused before anything starts.
  REQUIRE(::chmod(kafka_config.c_str(), 0644) == 0);
  const std::string refused_log = dir.Sub("refused.log");
  CHECK(ExitCode(testing::SpawnTend(engine_args, refused_log)) == 1);
  CHECK_THAT(ReadFile(refused_log), Catch::Contains("chmod 600"));
  REQUIRE(::chmod(kafka_config.c_str(), 0600) == 0);

  // An instance advertised off loopback: member records name where queries and callers' tokens
  // go, so it needs the cluster key that signs them (or to be told that ACLs alone guard the
  // topic), and a key file others may read is refused. All before anything starts.
  std::vector<std::string> advertised = engine_args;
  advertised.insert(advertised.end(),
                    {"--advertise", "10.1.2.3:7070", "--peer-tls-ca", dir.Sub("ca.pem")});
  const std::string unsigned_log = dir.Sub("unsigned.log");
  CHECK(ExitCode(testing::SpawnTend(advertised, unsigned_log)) == 1);
  CHECK_THAT(ReadFile(unsigned_log), Catch::Contains("--advertise off loopback") &&
                                         Catch::Contains("Give --cluster-key-file FILE"));
  const std::string cluster_key = dir.Sub("cluster.key");
  std::ofstream(cluster_key) << Token('c') << "\n";
  REQUIRE(::chmod(cluster_key.c_str(), 0640) == 0);
  advertised.insert(advertised.end(), {"--cluster-key-file", cluster_key});
  const std::string readable_log = dir.Sub("readable-key.log");
  CHECK(ExitCode(testing::SpawnTend(advertised, readable_log)) == 1);
  CHECK_THAT(ReadFile(readable_log), Catch::Contains("the cluster key file " + cluster_key +
                                                     " may be read by group or others"));
  CHECK_THAT(ReadFile(readable_log), !Catch::Contains(Token('c')));
  REQUIRE(::chmod(cluster_key.c_str(), 0600) == 0);
  // The key file belongs with --advertise; with both the key and --unsigned-membership the
  // engine signs and hears unsigned records too (a move to signed records), and says so.
  std::vector<std::string> key_alone = engine_args;
  key_alone.insert(key_alone.end(), {"--cluster-key-file", cluster_key});
  const std::string key_alone_log = dir.Sub("key-alone.log");
  CHECK(ExitCode(testing::SpawnTend(key_alone, key_alone_log)) == 1);
  CHECK_THAT(ReadFile(key_alone_log), Catch::Contains("--cluster-key-file needs --advertise"));
  std::vector<std::string> unsigned_alone = engine_args;
  unsigned_alone.push_back("--unsigned-membership");
  const std::string unsigned_alone_log = dir.Sub("unsigned-alone.log");
  CHECK(ExitCode(testing::SpawnTend(unsigned_alone, unsigned_alone_log)) == 1);
  CHECK_THAT(ReadFile(unsigned_alone_log),
             Catch::Contains("--unsigned-membership needs --advertise"));
  advertised.insert(advertised.end(), {"--unsigned-membership", "--metrics-listen", "127.0.0.1:0"});
  const std::string moving_log = dir.Sub("moving.log");
  const pid_t moving = testing::SpawnTend(advertised, moving_log);
  const int moving_metrics = LoggedPort(moving_log, "/metrics (port ");
  const std::string says = "member records signed, and those without a MAC heard too";
  absl::Time until = absl::Now() + absl::Seconds(30);
  while (ReadFile(moving_log).find(says) == std::string::npos && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  CHECK_THAT(ReadFile(moving_log), Catch::Contains(says));
  // A record without a MAC (an instance not moved yet): heard, and counted apart.
  const v1::MemberRecord not_moved = testing::MemberRecordOf("10.1.2.4:7070", {});
  REQUIRE((*producer)
              ->Produce("tend.membership", 0, not_moved.address(), not_moved.SerializeAsString(),
                        {}, nullptr)
              .ok());
  REQUIRE((*producer)->Flush(absl::Seconds(10)).ok());
  const std::string heard_unsigned = "tend_membership_records_total{result=\"heard_unsigned\"} 1";
  until = absl::Now() + absl::Seconds(30);
  while (testing::HttpGet(moving_metrics, "/metrics").value_or("").find(heard_unsigned) ==
             std::string::npos &&
         absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  CHECK_THAT(testing::HttpGet(moving_metrics, "/metrics").value_or(""),
             Catch::Contains(heard_unsigned));
  CHECK(Stop(moving) == 0);
}

}  // namespace
}  // namespace tend
