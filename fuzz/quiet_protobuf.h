// Included by every fuzz target: protobuf logs an ERROR line for each string field holding
// invalid UTF-8 it parses, which most fuzz inputs do; silenced here, the fuzzer runs at full
// speed and its output stays readable. (The engine's own handling of such records is tested
// apart: they are dead-lettered.)
#ifndef TEND_FUZZ_QUIET_PROTOBUF_H_
#define TEND_FUZZ_QUIET_PROTOBUF_H_

#include <google/protobuf/stubs/logging.h>

namespace tend::fuzz {
inline const bool kProtobufQuiet = [] {
  google::protobuf::SetLogHandler(nullptr);
  return true;
}();
}  // namespace tend::fuzz

#endif  // TEND_FUZZ_QUIET_PROTOBUF_H_
