#include "services/sink_service.h"

#include <google/protobuf/util/json_util.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <cstring>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/printable.h"

namespace tend {

namespace {

// Why `cmd` is refused, or empty.
std::string Refusal(const v1::ReminderCommand& cmd) {
  const absl::string_view id = cmd.command_id();
  if (id.empty()) return "command.command_id: is required";
  if (id.size() > kMaxSinkCommandIdBytes) {
    return absl::StrCat("command.command_id: ", id.size(), " bytes (at most ",
                        kMaxSinkCommandIdBytes, ")");
  }
  for (const char c : id) {
    if (IsAsciiControl(static_cast<unsigned char>(c))) {
      return "command.command_id: holds a control character";
    }
  }
  if (cmd.parameters_size() > kMaxSinkParameters) {
    return absl::StrCat("command.parameters: ", cmd.parameters_size(), " entries (at most ",
                        kMaxSinkParameters, ")");
  }
  if (const size_t bytes = cmd.ByteSizeLong(); bytes > kMaxSinkCommandBytes) {
    return absl::StrCat("command: ", bytes, " bytes serialized (at most ", kMaxSinkCommandBytes,
                        ")");
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<SinkService>> SinkService::Create(const std::string& out_path,
                                                                 bool keep_commands) {
  std::unique_ptr<SinkService> sink(new SinkService());
  sink->keep_commands_ = keep_commands;
  if (out_path.empty()) return sink;
  absl::MutexLock lock(&sink->mu_);
  std::string text;
  {
    std::error_code ec;
    const bool exists = std::filesystem::exists(out_path, ec);
    std::ifstream in(out_path, std::ios::binary);
    if (exists && !in) {
      // Treating it as empty would forget every id it holds: duplicates would be accepted.
      return absl::UnavailableError(absl::StrCat("cannot read ", out_path, " to dedupe on it"));
    }
    if (in) {
      std::stringstream content;
      content << in.rdbuf();
      if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", out_path));
      text = std::move(content).str();
    }
  }
  // Every complete line must be a command: a line that is not would make the sink forget its id
  // and accept that command again. Only the last line may be cut short (a crash mid-write: never
  // acknowledged, so the sender retries it); it is cut off before appending, or the next line
  // would be glued to it.
  size_t complete = 0;  // bytes of whole lines
  int64_t line_no = 0;
  google::protobuf::util::JsonParseOptions options;
  while (complete < text.size()) {
    const size_t end = text.find('\n', complete);
    if (end == std::string::npos) break;  // the cut-short tail
    ++line_no;
    const absl::string_view line(text.data() + complete, end - complete);
    if (line.find_first_not_of(" \t\r") == absl::string_view::npos) {  // blank: nothing lost
      complete = end + 1;
      continue;
    }
    v1::ReminderCommand cmd;
    if (auto parsed = google::protobuf::util::JsonStringToMessage(std::string(line), &cmd, options);
        !parsed.ok() || cmd.command_id().empty()) {
      return absl::DataLossError(absl::StrCat(
          out_path, ":", line_no, ": not a tend.v1.ReminderCommand (",
          parsed.ok() ? std::string("command_id: is required") : std::string(parsed.message()),
          "). The sink dedupes on the ids in this file: repair or remove the line, then "
          "start again"));
    }
    if (sink->seen_.insert(cmd.command_id()).second) {
      ++sink->accepted_;
      if (keep_commands) sink->commands_.push_back(std::move(cmd));
    }
    complete = end + 1;
  }
  if (complete < text.size()) {
    TEND_LOG_WARN("%s: the last %d bytes are a line cut short (a crash mid-write; never "
                  "acknowledged, so the sender retries it); removing them",
                  out_path, text.size() - complete);
    if (::truncate(out_path.c_str(), static_cast<off_t>(complete)) != 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot truncate ", out_path, ": ", std::strerror(errno)));
    }
  }
  // Created for its owner alone: it names patients. (An existing file keeps its mode.)
  if (const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      fd >= 0) {
    ::close(fd);
  }
  sink->out_.open(out_path, std::ios::app);
  if (!sink->out_) return absl::UnavailableError(absl::StrCat("cannot append to ", out_path));
  sink->has_out_ = true;
  return sink;
}

grpc::Status SinkService::Deliver(grpc::ServerContext* context,
                                  const v1::DeliverRequest* request,
                                  v1::DeliverResponse* response) {
  if (grpc::Status s = Authorize(authorizer_.get(), context, Role::kDeliver); !s.ok()) return s;
  const v1::ReminderCommand& cmd = request->command();
  if (std::string why = Refusal(cmd); !why.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why);
  }
  absl::MutexLock lock(&mu_);
  if (seen_.contains(cmd.command_id())) {
    ++duplicates_;
    response->set_duplicate(true);
    return grpc::Status::OK;
  }
  if (has_out_) {
    std::string line;
    if (absl::Status s = json_.Write(cmd, &line); !s.ok()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, std::string(s.message()));
    }
    out_ << line << '\n';
    out_.flush();  // durable enough for the reference sink: in the OS before the ack
    if (!out_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "cannot write the output file");
  }
  seen_.insert(cmd.command_id());
  ++accepted_;
  if (keep_commands_) commands_.push_back(cmd);
  if (on_accept_) on_accept_(cmd, absl::Now());
  return grpc::Status::OK;
}

int64_t SinkService::accepted() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

int64_t SinkService::duplicates() const {
  absl::MutexLock lock(&mu_);
  return duplicates_;
}

std::vector<v1::ReminderCommand> SinkService::commands() const {
  absl::MutexLock lock(&mu_);
  return commands_;
}

}  // namespace tend
