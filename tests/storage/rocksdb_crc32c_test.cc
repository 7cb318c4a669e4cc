// storage/rocksdb_crc32c.cc: RocksDB in this binary checksums with tend's CRC-32C, and what it
// writes is what Debian's own RocksDB (the `ldb` of rocksdb-tools, linked with the library's
// software CRC-32C) reads: a write-ahead log written here dumps there record for record, and
// the same log with one byte changed does not.
#include <rocksdb/db.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "base/crc32c.h"
#include "tests/temp_dir.h"

namespace rocksdb::crc32c {
std::string IsFastCrc32Supported();  // util/crc32c.h: defined by storage/rocksdb_crc32c.cc
}  // namespace rocksdb::crc32c

namespace tend {
namespace {

// Runs `command` through the shell; its standard output and error, and whether it exited 0.
std::pair<std::string, bool> Run(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  return {out, status == 0};
}

std::string WalFile(const std::string& dir) {
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".log") return f.path().string();
  }
  return "";
}

TEST_CASE("RocksDB here computes its CRC-32C with tend's", "[storage]") {
  const std::string which = rocksdb::crc32c::IsFastCrc32Supported();
  INFO(which);
  CHECK(which.find("(tend: ") != std::string::npos);
}

TEST_CASE("a WAL written here is read by Debian's own RocksDB, and a changed byte is caught",
          "[storage]") {
  testing::TempDir dir;
  const std::string db_dir = dir.Sub("db");
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(options, db_dir, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    // Values longer than a WAL block (32 KiB) too: records in fragments, each checksummed.
    for (int i = 0; i < 40; ++i) {
      const std::string value(i % 4 == 0 ? 70'000 : 300, static_cast<char>('a' + i % 26));
      REQUIRE(db->Put(rocksdb::WriteOptions(), "key-" + std::to_string(i), value).ok());
    }
    REQUIRE(db->Close().ok());  // no flush: the records stay in the WAL only
  }
  const std::string wal = WalFile(db_dir);
  REQUIRE_FALSE(wal.empty());

  auto [out, ok] = Run("ldb dump_wal --walfile=" + wal);
  INFO(out.substr(0, 2000));
  REQUIRE(out.find("ldb: not found") == std::string::npos);  // tools/dev installs rocksdb-tools
  CHECK(ok);
  CHECK(out.find("Corruption") == std::string::npos);
  CHECK(out.find("0x6B65792D3339") != std::string::npos);  // ldb prints keys in hex: key-39

  // The same log with one byte of a value changed: ldb's CRC-32C no longer matches.
  std::string bytes;
  {
    std::ifstream in(wal, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = bytes.rfind(std::string(300, 'a' + 39 % 26));
  REQUIRE(at != std::string::npos);
  bytes[at + 100] ^= 0x01;
  {
    std::ofstream out_file(wal, std::ios::binary | std::ios::trunc);
    out_file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto [bad, bad_ok] = Run("ldb dump_wal --walfile=" + wal);
  INFO(bad.substr(0, 2000));
  CHECK(bad.find("checksum mismatch") != std::string::npos);
}

TEST_CASE("RocksDB here replays the WAL it wrote", "[storage]") {
  testing::TempDir dir;
  const std::string db_dir = dir.Sub("db");
  rocksdb::Options options;
  options.create_if_missing = true;
  options.paranoid_checks = true;
  for (int round = 0; round < 2; ++round) {
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(options, db_dir, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    if (round == 0) {
      REQUIRE(db->Put(rocksdb::WriteOptions(), "k", std::string(50'000, 'v')).ok());
    } else {
      std::string value;
      REQUIRE(db->Get(rocksdb::ReadOptions(), "k", &value).ok());
      CHECK(value == std::string(50'000, 'v'));
    }
    REQUIRE(db->Close().ok());
  }
}

}  // namespace
}  // namespace tend
