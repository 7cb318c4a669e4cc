// kafka/props.h: librdkafka properties from flags and from a properties file that may hold a
// secret (a SASL password): its lines, its mode, and errors that never repeat a value.
#include "kafka/props.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/temp_dir.h"

namespace tend {
namespace {

std::string Write(const testing::TempDir& dir, const std::string& text, mode_t mode) {
  const std::string path = dir.Sub("kafka.properties");
  std::ofstream(path) << text;
  REQUIRE(::chmod(path.c_str(), mode) == 0);
  return path;
}

TEST_CASE("a Kafka properties file is KEY=VALUE lines, private to its owner, and its errors "
          "never repeat a value",
          "[kafka]") {
  testing::TempDir dir;
  KafkaProps props = {{"bootstrap.servers", "b:9092"}};
  const std::string path =
      Write(dir,
            "# SASL over TLS\n\nsecurity.protocol=SASL_SSL\n  sasl.username = tend-engine \n"
            "sasl.password=s3cr=t\n",
            0600);
  REQUIRE(ReadKafkaConfigFile(path, &props).ok());
  CHECK(props == KafkaProps{{"bootstrap.servers", "b:9092"},
                            {"security.protocol", "SASL_SSL"},
                            {"sasl.username", "tend-engine"},
                            {"sasl.password", "s3cr=t"}});

  SECTION("readable by group or others: refused") {
    const std::string open = Write(dir, "sasl.password=hunter2\n", 0640);
    const absl::Status s = ReadKafkaConfigFile(open, &props);
    CHECK(absl::IsPermissionDenied(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("chmod 600"));
  }
  SECTION("a line without '=' names its number, not its text") {
    const std::string bad = Write(dir, "security.protocol=SASL_SSL\nhunter2\n", 0600);
    const absl::Status s = ReadKafkaConfigFile(bad, &props);
    CHECK(absl::IsInvalidArgument(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("line 2: not KEY=VALUE"));
    CHECK_THAT(std::string(s.message()), !Catch::Contains("hunter2"));
    // A Java-style "key: value" line is not taken for a key holding part of the secret.
    const std::string colon = Write(dir, "sasl.password: pa=ss\n", 0600);
    const absl::Status c = ReadKafkaConfigFile(colon, &props);
    CHECK_THAT(std::string(c.message()), Catch::Contains("line 1: not KEY=VALUE"));
    CHECK_THAT(std::string(c.message()), !Catch::Contains(": pa"));
  }
  SECTION("not a regular file, or missing") {
    CHECK_FALSE(ReadKafkaConfigFile(dir.path(), &props).ok());
    CHECK(absl::IsNotFound(ReadKafkaConfigFile(dir.Sub("none"), &props)));
  }
}

}  // namespace
}  // namespace tend
