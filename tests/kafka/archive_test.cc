// kafka/archive.h: the archive file format, its checksums, and what a reader says about a
// corrupt or truncated file. Real files in a temp dir.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "base/crc32c.h"
#include "kafka/archive.h"
#include "tests/temp_dir.h"

namespace tend {
namespace {

using testing::TempDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

uint32_t GetFrameLength(const std::string& bytes, size_t at) {
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return n;
}

// An archive of `n` records over 3 partitions.
void WriteArchive(const std::string& path, int n) {
  v1::ArchiveHeader header;
  header.set_topic("tend.events");
  header.set_partitions(3);
  for (int p = 0; p < 3; ++p) {
    header.add_low_offsets(0);
    header.add_high_offsets(n / 3 + (p < n % 3 ? 1 : 0));
  }
  auto writer = ArchiveWriter::Create(path, header);
  REQUIRE(writer.ok());
  for (int i = 0; i < n; ++i) {
    v1::ArchiveRecord r;
    r.set_partition(i % 3);
    r.set_offset(i / 3);
    r.set_key("p" + std::to_string(i));
    r.set_value(std::string(20 + i % 7, static_cast<char>('a' + i % 26)));
    r.set_timestamp_ms(1767225600000 + i);
    REQUIRE((*writer)->Append(r).ok());
  }
  REQUIRE((*writer)->Finish().ok());
}

// Reads every record; the status of the first failure, or OK with the count. With
// `check_layout`, each record must be the one WriteArchive wrote at its place.
absl::StatusOr<int> ReadArchive(const std::string& path, bool check_layout = true) {
  auto reader = ArchiveReader::Open(path);
  if (!reader.ok()) return reader.status();
  v1::ArchiveRecord r;
  int n = 0;
  for (;;) {
    auto more = (*reader)->Next(&r);
    if (!more.ok()) return more.status();
    if (!*more) return n;
    if (check_layout) {
      CHECK(r.partition() == n % 3);
      CHECK(r.offset() == n / 3);
      CHECK(r.key() == "p" + std::to_string(n));
    }
    ++n;
  }
}

TEST_CASE("an archive reads back record for record, with its header") {
  TempDir dir;
  const std::string path = dir.Sub("a.tarc");
  WriteArchive(path, 100);
  CHECK_FALSE(std::filesystem::exists(path + ".partial"));
  auto reader = ArchiveReader::Open(path);
  REQUIRE(reader.ok());
  CHECK((*reader)->header().format_version() == 1);
  CHECK((*reader)->header().topic() == "tend.events");
  CHECK((*reader)->header().high_offsets(0) == 34);
  auto n = ReadArchive(path);
  REQUIRE(n.ok());
  CHECK(*n == 100);
  CHECK(ReadAll(path).substr(0, 8) == "TENDARC\n");
}

TEST_CASE("a truncated archive is refused with the position, wherever it was cut") {
  TempDir dir;
  const std::string path = dir.Sub("a.tarc");
  WriteArchive(path, 50);
  const std::string whole = ReadAll(path);
  // Every cut point: inside the magic, the header, any record, the end frame.
  for (size_t cut = 0; cut < whole.size(); ++cut) {
    WriteAll(dir.Sub("cut.tarc"), whole.substr(0, cut));
    auto n = ReadArchive(dir.Sub("cut.tarc"));
    INFO("cut at " << cut);
    REQUIRE_FALSE(n.ok());
    CHECK(n.status().code() == absl::StatusCode::kDataLoss);
    if (cut >= 8 + 40) {  // past the header
      CHECK_THAT(std::string(n.status().message()), Catch::Contains("truncated at byte"));
    }
  }
}

TEST_CASE("a flipped byte is a checksum mismatch at the frame's position") {
  TempDir dir;
  const std::string path = dir.Sub("a.tarc");
  WriteArchive(path, 20);
  std::string bytes = ReadAll(path);
  bytes[bytes.size() / 2] ^= 0x10;
  WriteAll(path, bytes);
  auto n = ReadArchive(path);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().code() == absl::StatusCode::kDataLoss);
  CHECK_THAT(std::string(n.status().message()), Catch::Contains("is corrupt at byte"));
}

TEST_CASE("not an archive, or bytes after the end, are refused") {
  TempDir dir;
  WriteAll(dir.Sub("x"), "{\"event_id\": \"e1\"}\n");
  auto r = ArchiveReader::Open(dir.Sub("x"));
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.status().message()), Catch::Contains("not a tend archive"));
  CHECK(ArchiveReader::Open(dir.Sub("missing")).status().code() == absl::StatusCode::kNotFound);
  // A directory, /dev/zero, a FIFO: refused at once (a FIFO's open for reading would wait for
  // a writer; if it does, the test opens one so as to end, and fails).
  REQUIRE(::mkfifo(dir.Sub("fifo").c_str(), 0600) == 0);
  for (const std::string& path : {dir.path(), std::string("/dev/zero"), dir.Sub("fifo")}) {
    INFO(path);
    auto opened = std::async(std::launch::async, [path] { return ArchiveReader::Open(path); });
    if (opened.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      std::ofstream unblock(dir.Sub("fifo"));
      FAIL("ArchiveReader::Open waited on " << path);
    }
    const absl::Status s = opened.get().status();
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Contains("not a regular file"));
  }

  WriteArchive(dir.Sub("a.tarc"), 5);
  WriteAll(dir.Sub("a.tarc"), ReadAll(dir.Sub("a.tarc")) + "junk");
  auto n = ReadArchive(dir.Sub("a.tarc"));
  REQUIRE_FALSE(n.ok());
  CHECK_THAT(std::string(n.status().message()), Catch::Contains("after the end frame"));
}

TEST_CASE("an archive writer that does not finish leaves nothing behind") {
  TempDir dir;
  const std::string path = dir.Sub("a.tarc");
  {
    auto writer = ArchiveWriter::Create(path, v1::ArchiveHeader());
    REQUIRE(writer.ok());
    v1::ArchiveRecord r;
    r.set_key("p1");
    REQUIRE((*writer)->Append(r).ok());
    CHECK(std::filesystem::exists(path + ".partial"));
  }
  CHECK_FALSE(std::filesystem::exists(path + ".partial"));
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("a checksummed archive whose records its header cannot hold is refused", "[archive]") {
  TempDir dir;
  const std::string path = dir.Sub("a.tendarc");
  // One record per case, after a header of 2 partitions holding offsets [10, 20) and [0, 5).
  auto write = [&](int32_t partitions, std::vector<std::pair<int32_t, int64_t>> records) {
    v1::ArchiveHeader header;
    header.set_partitions(partitions);
    header.add_low_offsets(10);
    header.add_high_offsets(20);
    header.add_low_offsets(0);
    header.add_high_offsets(5);
    auto writer = ArchiveWriter::Create(path, header);
    REQUIRE(writer.ok());
    for (auto [p, o] : records) {
      v1::ArchiveRecord r;
      r.set_partition(p);
      r.set_offset(o);
      REQUIRE((*writer)->Append(r).ok());
    }
    REQUIRE((*writer)->Finish().ok());
  };
  auto problem = [&] {
    auto n = ReadArchive(path, /*check_layout=*/false);
    return n.ok() ? std::string("(accepted)") : std::string(n.status().message());
  };
  write(2, {{0, 10}, {1, 0}, {0, 19}, {1, 4}});
  CHECK(problem() == "(accepted)");
  write(2, {{-1, 0}});
  CHECK_THAT(problem(), Catch::Contains("a record of partition -1; the header has 2"));
  write(2, {{2, 0}});
  CHECK_THAT(problem(), Catch::Contains("a record of partition 2; the header has 2"));
  write(2, {{0, int64_t{1} << 62}});
  CHECK_THAT(problem(), Catch::Contains("partition 0 offset 4611686018427387904 is out of order "
                                        "or outside the exported range [10, 20)"));
  write(2, {{0, 9}});
  CHECK_THAT(problem(), Catch::Contains("outside the exported range [10, 20)"));
  write(2, {{1, 3}, {1, 3}});  // the same offset twice
  CHECK_THAT(problem(), Catch::Contains("partition 1 offset 3 is out of order"));
  write(2, {{1, 3}, {1, 2}});
  CHECK_THAT(problem(), Catch::Contains("partition 1 offset 2 is out of order"));
  write(0, {});
  CHECK_THAT(problem(), Catch::Contains("the header claims 0 partitions"));
  write(3, {});  // 3 partitions, offsets for 2
  CHECK_THAT(problem(), Catch::Contains("the header has 2 low and 2 high offsets for 3 partitions"));
}

TEST_CASE(
    "a frame over 64 MiB is refused by the writer and by the reader, and a source cuts "
    "long values and keys",
    "[archive]") {
  TempDir dir;
  const std::string path = dir.Sub("a.tendarc");
  v1::ArchiveHeader header;
  header.set_partitions(1);
  header.add_low_offsets(0);
  header.add_high_offsets(3);
  {
    auto writer = ArchiveWriter::Create(path, header);
    REQUIRE(writer.ok());
    v1::ArchiveRecord r;
    r.set_offset(0);
    r.set_key(std::string(6000, 'k'));
    r.set_value(std::string(5000, 'x'));
    REQUIRE((*writer)->Append(r).ok());
    r.set_offset(1);
    r.clear_key();
    r.set_value(std::string(kMaxArchiveFrame, 'x'));
    const absl::Status refused = (*writer)->Append(r);
    CHECK(refused.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(refused.message()),
               Catch::Contains("the record at partition 0 offset 1 takes 67108") &&
                   Catch::Contains("more than an archive frame holds (67108864)"));
    r.set_offset(2);
    r.set_key("p2");
    r.set_value("small");
    REQUIRE((*writer)->Append(r).ok());
    REQUIRE((*writer)->Finish().ok());
  }
  // Handed to a consumer that refuses values over 100 bytes: the long value and key come cut to
  // 101, the next record's whole (in the record that held the long ones: the source reuses it).
  {
    auto reader = ArchiveReader::Open(path);
    REQUIRE(reader.ok());
    struct Drain : ArchiveSource {
      using ArchiveSource::ArchiveSource;
      using ArchiveSource::Next;
    } source(reader->get(), 100);
    LogRecord record;
    REQUIRE(source.Next(&record).value_or(false));
    CHECK(record.value.size() == 101);
    CHECK(record.key.size() == 101);
    REQUIRE(source.Next(&record).value_or(false));
    CHECK(record.value == "small");
    CHECK(record.key == "p2");
    CHECK(source.Next(&record).ok());
  }
  // A frame whose length is over the bound is refused before anything is read for it.
  std::string bytes = ReadAll(path);
  const size_t first_frame_end = 8 + 4 + GetFrameLength(bytes, 8) + 4;
  std::string length(4, '\0');
  for (int i = 0; i < 4; ++i) length[i] = static_cast<char>((kMaxArchiveFrame + 1) >> (8 * i));
  bytes.insert(first_frame_end, length + "no payload");
  WriteAll(path, bytes);
  auto n = ReadArchive(path, /*check_layout=*/false);
  REQUIRE_FALSE(n.ok());
  CHECK_THAT(std::string(n.status().message()),
             Catch::Contains("a frame length of 67108865 bytes (a frame holds at most 67108864)"));
}

TEST_CASE("a partition-major archive is refused by its writer and its reader when a record "
          "goes back to a lower partition",
          "[archive]") {
  TempDir dir;
  const std::string path = dir.Sub("a.tendarc");
  auto header = [](bool partition_major) {
    v1::ArchiveHeader h;
    h.set_partitions(3);
    for (int p = 0; p < 3; ++p) {
      h.add_low_offsets(0);
      h.add_high_offsets(4);
    }
    h.set_partition_major(partition_major);
    return h;
  };
  auto record = [](int32_t p, int64_t o) {
    v1::ArchiveRecord r;
    r.set_partition(p);
    r.set_offset(o);
    return r;
  };
  // Partitions skipped and a partition's records in a row are partition-major.
  {
    auto writer = ArchiveWriter::Create(path, header(true));
    REQUIRE(writer.ok());
    for (auto [p, o] : std::vector<std::pair<int32_t, int64_t>>{{0, 0}, {0, 3}, {2, 1}, {2, 2}}) {
      REQUIRE((*writer)->Append(record(p, o)).ok());
    }
    const absl::Status back = (*writer)->Append(record(1, 0));
    CHECK(back.code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(back.message()),
               Catch::Contains("a record of partition 1 after partition 2's"));
    REQUIRE((*writer)->Finish().ok());
    auto read = ReadArchive(path, /*check_layout=*/false);
    REQUIRE(read.ok());
    CHECK(*read == 4);  // the refused record was not written
  }
  // Interleaved records under a header that says partition by partition (written as an older
  // archive, its header frame replaced, checksums right): the reader refuses the file.
  {
    auto writer = ArchiveWriter::Create(path, header(false));
    REQUIRE(writer.ok());
    for (auto [p, o] : std::vector<std::pair<int32_t, int64_t>>{{0, 0}, {1, 0}, {0, 1}}) {
      REQUIRE((*writer)->Append(record(p, o)).ok());
    }
    REQUIRE((*writer)->Finish().ok());
    CHECK(ReadArchive(path, /*check_layout=*/false).ok());  // interleaving is allowed there
    const std::string old = ReadAll(path);
    const uint32_t old_header = static_cast<uint8_t>(old[8]) | static_cast<uint8_t>(old[9]) << 8 |
                                static_cast<uint8_t>(old[10]) << 16 |
                                static_cast<uint8_t>(old[11]) << 24;
    v1::ArchiveFrame frame;
    *frame.mutable_header() = header(true);
    frame.mutable_header()->set_format_version(kArchiveFormatVersion);
    const std::string body = frame.SerializeAsString();
    auto u32 = [](uint32_t v) {
      return std::string{static_cast<char>(v), static_cast<char>(v >> 8),
                         static_cast<char>(v >> 16), static_cast<char>(v >> 24)};
    };
    WriteAll(path, old.substr(0, 8) + u32(static_cast<uint32_t>(body.size())) + body +
                       u32(Crc32c(body)) + old.substr(8 + 4 + old_header + 4));
    auto read = ReadArchive(path, /*check_layout=*/false);
    REQUIRE_FALSE(read.ok());
    CHECK(read.status().code() == absl::StatusCode::kDataLoss);
    CHECK_THAT(std::string(read.status().message()),
               Catch::Contains("a record of partition 0 after partition 1's, in an archive whose "
                               "header says its records are partition by partition"));
  }
}

// The record as protobuf's parser reads `payload`, or nothing when it does not parse to a record.
std::optional<v1::ArchiveRecord> ParsedRecord(const std::string& payload) {
  v1::ArchiveFrame frame;
  if (!frame.ParseFromString(payload) || !frame.has_record()) return std::nullopt;
  return frame.record();
}

std::string Framed(const v1::ArchiveRecord& record) {
  v1::ArchiveFrame frame;
  *frame.mutable_record() = record;
  return frame.SerializeAsString();
}

v1::ArchiveRecord RandomRecord(std::mt19937_64& rng) {
  auto bytes = [&rng](size_t max) {
    std::string b(std::uniform_int_distribution<size_t>(0, max)(rng), '\0');
    for (char& c : b) c = static_cast<char>(rng());
    return b;
  };
  // Zero, small, at the varint boundaries and anywhere, in each integer field.
  auto pick = [&rng](std::initializer_list<int64_t> edges) -> int64_t {
    const auto i = std::uniform_int_distribution<size_t>(0, edges.size())(rng);
    return i < edges.size() ? edges.begin()[i] : static_cast<int64_t>(rng());
  };
  v1::ArchiveRecord r;
  r.set_partition(
      static_cast<int32_t>(pick({0, 1, 127, 128, 16383, 16384, INT32_MAX}) & 0x7fffffff));
  r.set_offset(pick({0, 1, 127, 128, -1, INT64_MAX, INT64_MIN}));
  r.set_key(bytes(40));
  r.set_value(bytes(300));
  r.set_timestamp_ms(pick({0, 1767225600000, -1, INT64_MIN}));
  return r;
}

// The reader's own framing of a record (kafka/archive.h ReadRecordFrame) against protobuf's
// parser: every record as the writer frames it, and for any other bytes it takes, the same
// record protobuf reads.
TEST_CASE("a record frame is read as protobuf's parser reads it, and anything else is left to it",
          "[archive]") {
  std::mt19937_64 rng(17);
  v1::ArchiveRecord fast;
  for (int i = 0; i < 2000; ++i) {
    const v1::ArchiveRecord r = RandomRecord(rng);
    INFO(r.ShortDebugString());
    REQUIRE(ReadRecordFrame(Framed(r), &fast));  // one record message, reused
    CHECK(fast.SerializeAsString() == r.SerializeAsString());
  }
  // Valid protobuf, not the writer's framing: protobuf's parser reads it.
  v1::ArchiveRecord r;
  r.set_partition(2);
  r.set_offset(300);
  r.set_key("p1");
  r.set_value("v");
  r.set_timestamp_ms(5);
  const std::string body = r.SerializeAsString();  // 08 02 10 ac02 1a 02 p1 22 01 v 28 05
  const std::string no_time = body.substr(0, body.size() - 2);
  auto frame_of = [](const std::string& record_bytes) {
    return std::string("\x12", 1) + static_cast<char>(record_bytes.size()) + record_bytes;
  };
  const std::vector<std::pair<std::string, std::string>> others = {
      {"fields in reverse order",
       frame_of(std::string("\x28\x05\x22\x01v\x1a\x02p1\x10\xac\x02\x08\x02", 14))},
      {"a field twice", frame_of(body + std::string("\x28\x06", 2))},
      {"an unknown field", frame_of(body + std::string("\x30\x01", 2))},
      {"a varint longer than it need be",
       frame_of(std::string("\x08\x82\x00", 3) + body.substr(2))},
      {"a negative partition",
       frame_of(std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11) + body.substr(2))},
      // A field after the record that would be the record's next one, were the record's own
      // length not where it ends.
      {"bytes after the record", frame_of(no_time) + std::string("\x28\x05", 2)},
      {"a key as a varint", frame_of(std::string("\x18\x01", 2))},
      {"the end frame", std::string("\x1a\x02\x08\x03", 4)},
      {"the header frame", std::string("\x0a\x00", 2)},
      {"a tenth varint byte over 1",
       frame_of(std::string("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11))},
  };
  for (size_t i = 0; i < others.size(); ++i) {
    const auto& [what, payload] = others[i];
    INFO(what);
    CHECK_FALSE(ReadRecordFrame(payload, &fast));
    // The first four, and the sixth, are records to protobuf's parser all the same.
    if (i < 4 || i == 5) CHECK(ParsedRecord(payload).has_value());
  }
  // Taken: an empty record, and a zero written where the writer leaves it out.
  for (const std::string& payload :
       {std::string("\x12\x00", 2), frame_of(std::string("\x08\x00\x10\x00", 4))}) {
    REQUIRE(ReadRecordFrame(payload, &fast));
    const std::optional<v1::ArchiveRecord> parsed = ParsedRecord(payload);
    REQUIRE(parsed.has_value());
    CHECK(fast.SerializeAsString() == parsed->SerializeAsString());
    CHECK(fast.SerializeAsString().empty());
  }
  // Cuts and flipped bytes of a framed record: whatever it reads, protobuf reads the same.
  int taken = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string payload = Framed(RandomRecord(rng));
    const int flips = std::uniform_int_distribution<int>(1, 3)(rng);
    for (int f = 0; f < flips; ++f) {
      payload[std::uniform_int_distribution<size_t>(0, payload.size() - 1)(rng)] =
          static_cast<char>(rng());
    }
    if (i % 4 == 0) payload.resize(std::uniform_int_distribution<size_t>(0, payload.size())(rng));
    if (!ReadRecordFrame(payload, &fast)) continue;
    ++taken;
    const std::optional<v1::ArchiveRecord> parsed = ParsedRecord(payload);
    REQUIRE(parsed.has_value());
    CHECK(fast.SerializeAsString() == parsed->SerializeAsString());
  }
  CHECK(taken > 1000);  // the flips that keep a record's framing (a byte of a key or value)
}

// An archive whose writer framed a record otherwise (another protobuf library may order fields
// differently) reads back all the same.
TEST_CASE("a record framed otherwise than tend's writer frames it reads back the same",
          "[archive]") {
  TempDir dir;
  const std::string path = dir.Sub("a.tar");
  WriteArchive(path, 6);
  std::string bytes = ReadAll(path);
  // Frames: magic, then [length][payload][CRC-32C] each; the header's, then the records'.
  size_t at = 8;
  at += 8 + GetFrameLength(bytes, at);  // the header
  at += 8 + GetFrameLength(bytes, at);  // record 0
  const uint32_t n = GetFrameLength(bytes, at);
  const std::optional<v1::ArchiveRecord> record = ParsedRecord(bytes.substr(at + 4, n));
  REQUIRE(record.has_value());
  // The same record, its fields in reverse order: timestamp, value, key, offset, partition.
  std::string body;
  google::protobuf::io::StringOutputStream out(&body);
  {
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.WriteTag(5 << 3);
    coded.WriteVarint64(static_cast<uint64_t>(record->timestamp_ms()));
    for (const auto& [field, text] :
         {std::pair{4, &record->value()}, std::pair{3, &record->key()}}) {
      coded.WriteTag((field << 3) | 2);
      coded.WriteVarint32(static_cast<uint32_t>(text->size()));
      coded.WriteString(*text);
    }
    coded.WriteTag(2 << 3);
    coded.WriteVarint64(static_cast<uint64_t>(record->offset()));
    coded.WriteTag(1 << 3);
    coded.WriteVarint64(static_cast<uint64_t>(record->partition()));
  }
  std::string payload = std::string("\x12", 1) + static_cast<char>(body.size()) + body;
  REQUIRE(payload.size() < 128);
  v1::ArchiveRecord unused;
  REQUIRE_FALSE(ReadRecordFrame(payload, &unused));
  std::string frame(4, '\0');
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>((payload.size() >> (8 * i)) & 0xff);
  frame += payload;
  const uint32_t crc = Crc32c(payload);
  for (int i = 0; i < 4; ++i) frame.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  bytes.replace(at, 8 + n, frame);
  WriteAll(path, bytes);
  auto read = ReadArchive(path);
  REQUIRE(read.ok());
  CHECK(*read == 6);
}

}  // namespace
}  // namespace tend
