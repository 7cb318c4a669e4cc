#include "engine/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/str_cat.h"

namespace tend {

namespace {
constexpr char kTypeUrlPrefix[] = "type.googleapis.com";
}

JsonWriter::JsonWriter()
    : resolver_(google::protobuf::util::NewTypeResolverForDescriptorPool(
          kTypeUrlPrefix, google::protobuf::DescriptorPool::generated_pool())) {
  options_.preserve_proto_field_names = true;
  options_.always_print_primitive_fields = true;
}

absl::Status JsonWriter::Write(const google::protobuf::Message& message, std::string* out) {
  bytes_.clear();
  {
    google::protobuf::io::StringOutputStream stream(&bytes_);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);  // map entries in key order
    message.SerializeToCodedStream(&coded);
  }
  out->clear();
  // The binary-to-JSON path renders fields in wire order, so the sorted entries stay sorted.
  auto s = google::protobuf::util::BinaryToJsonString(
      resolver_.get(), absl::StrCat(kTypeUrlPrefix, "/", message.GetDescriptor()->full_name()),
      bytes_, out, options_);
  if (!s.ok()) return absl::InternalError(std::string(s.message()));
  return absl::OkStatus();
}

}  // namespace tend
