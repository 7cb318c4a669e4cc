#include "tests/raw_db.h"

#include <catch2/catch.hpp>

#include "storage/format.h"

namespace tend::testing {

void EditRawDb(const std::string& dir,
               const std::function<void(rocksdb::DB*,
                                        const std::vector<rocksdb::ColumnFamilyHandle*>&)>& edit) {
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  families.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (absl::string_view cf : storage_format::kColumnFamilies) {
    families.emplace_back(std::string(cf), rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), dir, families, &handles, &raw).ok());
  edit(raw, handles);
  for (auto* h : handles) REQUIRE(raw->DestroyColumnFamilyHandle(h).ok());
  delete raw;
}

}  // namespace tend::testing
