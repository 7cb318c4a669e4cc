// kafka/archive.h: the archive file format, its checksums, and what a reader says about a
// corrupt or truncated file. Real files in a temp dir.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>

#include <filesystem>
#include <fstream>
#include <iterator>

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
  for (const std::string path : {dir.path(), std::string("/dev/zero"), dir.Sub("fifo")}) {
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
    "long values",
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
    r.set_value(std::string(5000, 'x'));
    REQUIRE((*writer)->Append(r).ok());
    r.set_offset(1);
    r.set_value(std::string(kMaxArchiveFrame, 'x'));
    const absl::Status refused = (*writer)->Append(r);
    CHECK(refused.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(refused.message()),
               Catch::Contains("the record at partition 0 offset 1 takes 67108") &&
                   Catch::Contains("more than an archive frame holds (67108864)"));
    r.set_offset(2);
    r.set_value("small");
    REQUIRE((*writer)->Append(r).ok());
    REQUIRE((*writer)->Finish().ok());
  }
  // Handed to a consumer that refuses values over 100 bytes: the long one comes cut to 101, the
  // next whole.
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
    REQUIRE(source.Next(&record).value_or(false));
    CHECK(record.value == "small");
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

}  // namespace
}  // namespace tend
