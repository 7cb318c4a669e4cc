#include "kafka/archive.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/crc32c.h"
#include "base/file.h"
#include "base/status.h"

namespace tend {
namespace {

void PutU32(uint32_t v, char* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t GetU32(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}

// A varint at `*p` (before `end`) in its shortest form, as protobuf's serializer writes it,
// moving `*p` past it. False for a cut, a longer form (a last byte of 0 after others: protobuf's
// parser may read it, but not always the same way), or more than 64 bits.
bool ReadShortestVarint(const char** p, const char* end, uint64_t* v) {
  uint64_t x = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (*p == end) return false;
    const auto b = static_cast<uint8_t>(*(*p)++);
    if (shift == 63 && b > 1) return false;
    x |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      if (b == 0 && shift > 0) return false;
      *v = x;
      return true;
    }
  }
  return false;
}

}  // namespace

bool ReadRecordFrame(absl::string_view payload, v1::ArchiveRecord* record) {
  const char* p = payload.data();
  const char* const end = p + payload.size();
  uint64_t n = 0;
  // ArchiveFrame.record: field 2, LEN, the record to the end of the payload.
  if (p == end || *p++ != 0x12) return false;
  if (!ReadShortestVarint(&p, end, &n) || n != static_cast<uint64_t>(end - p)) return false;
  record->Clear();
  // The record's fields in field-number order, each tag (field number << 3 | wire type) once at
  // most: what is left after them (a field out of order or twice, an unknown one) is refused.
  const auto next_is = [&p, end](uint8_t tag) {
    if (p == end || static_cast<uint8_t>(*p) != tag) return false;
    ++p;
    return true;
  };
  const auto bytes = [&p, end, &n](std::string* out) {
    if (!ReadShortestVarint(&p, end, &n) || n > static_cast<uint64_t>(end - p)) return false;
    out->assign(p, n);
    p += n;
    return true;
  };
  if (next_is(0x08)) {  // partition, int32, varint
    if (!ReadShortestVarint(&p, end, &n) || n > 0x7fffffff) return false;
    record->set_partition(static_cast<int32_t>(n));
  }
  if (next_is(0x10)) {  // offset, int64, varint
    if (!ReadShortestVarint(&p, end, &n)) return false;
    record->set_offset(static_cast<int64_t>(n));
  }
  if (next_is(0x1a) && !bytes(record->mutable_key())) return false;    // key, LEN
  if (next_is(0x22) && !bytes(record->mutable_value())) return false;  // value, LEN
  if (next_is(0x28)) {  // timestamp_ms, int64, varint
    if (!ReadShortestVarint(&p, end, &n)) return false;
    record->set_timestamp_ms(static_cast<int64_t>(n));
  }
  return p == end;
}

absl::StatusOr<std::unique_ptr<ArchiveWriter>> ArchiveWriter::Create(const std::string& path,
                                                                     v1::ArchiveHeader header) {
  std::unique_ptr<ArchiveWriter> w(new ArchiveWriter);
  w->path_ = path;
  w->partial_ = path + ".partial";
  w->out_ = std::fopen(w->partial_.c_str(), "wb");
  if (w->out_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", w->partial_, ": ", std::strerror(errno)));
  }
  if (std::fwrite(kArchiveMagic, 1, 8, w->out_) != 8) {
    return absl::UnavailableError(absl::StrCat("writing ", w->partial_, " failed"));
  }
  w->bytes_ = 8;
  header.set_format_version(kArchiveFormatVersion);
  w->partition_major_ = header.partition_major();
  v1::ArchiveFrame frame;
  *frame.mutable_header() = std::move(header);
  TEND_RETURN_IF_ERROR(w->WriteFrame(frame));
  return w;
}

ArchiveWriter::~ArchiveWriter() {
  if (out_ != nullptr) std::fclose(out_);
  if (!finished_) std::remove(partial_.c_str());
}

absl::Status ArchiveWriter::WriteFrame(const v1::ArchiveFrame& frame) {
  buffer_.resize(4);
  if (!frame.AppendToString(&buffer_)) return absl::InternalError("serializing an archive frame");
  if (buffer_.size() - 4 > kMaxArchiveFrame) {
    return absl::InvalidArgumentError(absl::StrCat(
        frame.has_record() ? absl::StrCat("the record at partition ", frame.record().partition(),
                                          " offset ", frame.record().offset())
                           : std::string("the header"),
        " takes ", buffer_.size() - 4, " bytes in an archive, more than an archive frame holds (",
        kMaxArchiveFrame, ")"));
  }
  const uint32_t n = static_cast<uint32_t>(buffer_.size() - 4);
  PutU32(n, buffer_.data());
  char crc[4];
  PutU32(Crc32c(absl::string_view(buffer_).substr(4)), crc);
  buffer_.append(crc, 4);
  if (std::fwrite(buffer_.data(), 1, buffer_.size(), out_) != buffer_.size()) {
    return absl::UnavailableError(
        absl::StrCat("writing ", partial_, " failed: ", std::strerror(errno), " (disk full?)"));
  }
  bytes_ += static_cast<int64_t>(buffer_.size());
  return absl::OkStatus();
}

absl::Status ArchiveWriter::Append(const v1::ArchiveRecord& record) {
  if (partition_major_ && record.partition() < last_partition_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "a record of partition ", record.partition(), " after partition ", last_partition_,
        "'s: this archive is written partition by partition (its header says so)"));
  }
  v1::ArchiveFrame frame;
  *frame.mutable_record() = record;
  TEND_RETURN_IF_ERROR(WriteFrame(frame));
  last_partition_ = record.partition();
  ++records_;
  return absl::OkStatus();
}

absl::Status ArchiveWriter::Finish() {
  v1::ArchiveFrame frame;
  frame.mutable_end()->set_records(records_);
  TEND_RETURN_IF_ERROR(WriteFrame(frame));
  if (std::fflush(out_) != 0 || ::fsync(fileno(out_)) != 0) {
    return absl::UnavailableError(absl::StrCat("flushing ", partial_, ": ", std::strerror(errno)));
  }
  std::fclose(out_);
  out_ = nullptr;
  std::error_code ec;
  std::filesystem::rename(partial_, path_, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("renaming ", partial_, ": ", ec.message()));
  finished_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ArchiveReader>> ArchiveReader::Open(const std::string& path) {
  std::unique_ptr<ArchiveReader> r(new ArchiveReader);
  r->path_ = path;
  // Not a FIFO or a device, which the stream's open would wait on or read without end.
  TEND_RETURN_IF_ERROR(CheckRegularFile(path));
  r->in_.open(path, std::ios::binary);
  if (!r->in_) return absl::NotFoundError(absl::StrCat("cannot read archive ", path));
  std::error_code ec;
  r->size_ = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  char magic[8];
  if (!r->in_.read(magic, 8) || std::memcmp(magic, kArchiveMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(path, " is not a tend archive (no TENDARC magic)"));
  }
  r->position_ = 8;
  v1::ArchiveFrame frame;
  TEND_RETURN_IF_ERROR(r->ReadFrame(&frame));
  if (!frame.has_header()) return r->Corrupt(8, "the first frame is not the header");
  if (frame.header().format_version() != kArchiveFormatVersion) {
    return absl::DataLossError(absl::StrCat(
        path, ": archive format version ", frame.header().format_version(),
        " is not one this tend reads (", kArchiveFormatVersion, "); use a matching tend"));
  }
  r->header_ = std::move(*frame.mutable_header());
  // Hostile input: the header bounds every record that follows.
  const v1::ArchiveHeader& h = r->header_;
  if (h.partitions() < 1 || h.partitions() > kMaxArchivePartitions) {
    return r->Corrupt(8, absl::StrCat("the header claims ", h.partitions(),
                                      " partitions (allowed: 1..", kMaxArchivePartitions, ")"));
  }
  if (h.low_offsets_size() != h.partitions() || h.high_offsets_size() != h.partitions()) {
    return r->Corrupt(8, absl::StrCat("the header has ", h.low_offsets_size(), " low and ",
                                      h.high_offsets_size(), " high offsets for ", h.partitions(),
                                      " partitions"));
  }
  for (int p = 0; p < h.partitions(); ++p) {
    if (h.low_offsets(p) < 0 || h.low_offsets(p) > h.high_offsets(p) ||
        h.high_offsets(p) > kMaxArchiveOffset) {
      return r->Corrupt(8, absl::StrCat("partition ", p, ": impossible offsets [",
                                        h.low_offsets(p), ", ", h.high_offsets(p), ")"));
    }
  }
  r->next_offset_.assign(h.low_offsets().begin(), h.low_offsets().end());
  return r;
}

absl::Status ArchiveReader::Corrupt(int64_t at, absl::string_view problem) const {
  return absl::DataLossError(absl::StrCat("archive ", path_, " is corrupt at byte ", at, " (after ",
                                          records_, " records): ", problem));
}

absl::StatusOr<absl::string_view> ArchiveReader::ReadPayload() {
  const int64_t at = position_;
  char len[4];
  if (!in_.read(len, 4)) {
    return absl::DataLossError(absl::StrCat(
        "archive ", path_, " is truncated at byte ", at, " after ", records_,
        " records: its end frame is missing (the export did not finish, or the file was cut "
        "short); export it again"));
  }
  const uint32_t n = GetU32(len);
  if (n > kMaxArchiveFrame) {
    return Corrupt(at, absl::StrCat("a frame length of ", n, " bytes (a frame holds at most ",
                                    kMaxArchiveFrame, ")"));
  }
  buffer_.resize(n + 4);
  if (!in_.read(buffer_.data(), static_cast<std::streamsize>(n) + 4)) {
    return absl::DataLossError(absl::StrCat("archive ", path_, " is truncated at byte ", at,
                                            " after ", records_,
                                            " records: the frame there is cut short; export "
                                            "it again"));
  }
  position_ += 8 + n;
  const absl::string_view payload(buffer_.data(), n);
  if (Crc32c(payload) != GetU32(buffer_.data() + n)) return Corrupt(at, "checksum mismatch");
  return payload;
}

absl::Status ArchiveReader::ReadFrame(v1::ArchiveFrame* frame) {
  const int64_t at = position_;
  TEND_ASSIGN_OR_RETURN(absl::string_view payload, ReadPayload());
  if (!frame->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Corrupt(at, "the frame does not parse");
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ArchiveReader::Next(v1::ArchiveRecord* record) {
  if (ended_) return false;
  const int64_t at = position_;
  TEND_ASSIGN_OR_RETURN(absl::string_view payload, ReadPayload());
  // A record as the writer frames it is read without a frame message; any other frame, or a
  // record framed otherwise, by protobuf's parser.
  if (!ReadRecordFrame(payload, record)) {
    v1::ArchiveFrame frame;
    if (!frame.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return Corrupt(at, "the frame does not parse");
    }
    if (!frame.has_record()) {
      if (!frame.has_end()) return Corrupt(at, "a second header");
      if (frame.end().records() != records_) {
        return Corrupt(at, absl::StrCat("the end frame counts ", frame.end().records(),
                                        " records, the file holds ", records_));
      }
      if (position_ != size_ && size_ > 0) {
        return Corrupt(position_, "bytes after the end frame");
      }
      ended_ = true;
      return false;
    }
    *record = std::move(*frame.mutable_record());
  }
  const v1::ArchiveRecord& rec = *record;
  const int32_t p = rec.partition();
  if (p < 0 || p >= header_.partitions()) {
    return Corrupt(
        at, absl::StrCat("a record of partition ", p, "; the header has ", header_.partitions()));
  }
  if (rec.offset() < next_offset_[static_cast<size_t>(p)] ||
      rec.offset() >= header_.high_offsets(p)) {
    return Corrupt(at, absl::StrCat("partition ", p, " offset ", rec.offset(),
                                    " is out of order or outside the exported range [",
                                    header_.low_offsets(p), ", ", header_.high_offsets(p),
                                    "); records of a partition are in rising offset order"));
  }
  if (header_.partition_major() && p < last_partition_) {
    return Corrupt(at,
                   absl::StrCat("a record of partition ", p, " after partition ", last_partition_,
                                "'s, in an archive whose header says its "
                                "records are partition by partition"));
  }
  last_partition_ = p;
  next_offset_[static_cast<size_t>(p)] = rec.offset() + 1;
  ++records_;
  return true;
}

absl::StatusOr<bool> ArchiveSource::Next(LogRecord* out) {
  v1::ArchiveRecord& record = records_[next_];
  TEND_ASSIGN_OR_RETURN(bool more, reader_->Next(&record));
  if (!more) return false;
  // The ring's records keep their strings' capacity from one record to the next (ReadRecordFrame),
  // so a long key is cut as a long value is: a key longer than any value is no patient id.
  for (std::string* bytes : {record.mutable_value(), record.mutable_key()}) {
    if (max_value_bytes_ > 0 && bytes->size() > max_value_bytes_ + 1) {
      bytes->resize(max_value_bytes_ + 1);
      bytes->shrink_to_fit();
    }
  }
  next_ = (next_ + 1) % records_.size();
  out->timestamp_ms = record.timestamp_ms();
  out->partition = record.partition();
  out->offset = record.offset();
  out->key = record.key();
  out->value = record.value();
  return true;
}

}  // namespace tend
