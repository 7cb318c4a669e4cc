// Editing a state directory under the Storage layer, as a raw RocksDB with tend's column families:
// for tests of older formats and damaged state. Links RocksDB only (with tend_storage's format).
#ifndef TEND_TESTS_RAW_DB_H_
#define TEND_TESTS_RAW_DB_H_

#include <rocksdb/db.h>

#include <functional>
#include <string>
#include <vector>

namespace tend::testing {

// Opens the state directory with RocksDB alone (every column family, in storage/format.h order
// after the default one) and hands it to `edit`: for tests that write what tend no longer would,
// such as an older storage format.
void EditRawDb(const std::string& dir,
               const std::function<void(rocksdb::DB*,
                                        const std::vector<rocksdb::ColumnFamilyHandle*>&)>& edit);

}  // namespace tend::testing

#endif  // TEND_TESTS_RAW_DB_H_
