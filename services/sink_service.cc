#include "services/sink_service.h"

#include <google/protobuf/util/json_util.h>

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <cstring>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace tend {

absl::StatusOr<std::unique_ptr<SinkService>> SinkService::Create(const std::string& out_path) {
  std::unique_ptr<SinkService> sink(new SinkService());
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
    if (sink->seen_.insert(cmd.command_id()).second) sink->commands_.push_back(std::move(cmd));
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
  if (cmd.command_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "command.command_id: is required");
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
  commands_.push_back(cmd);
  if (on_accept_) on_accept_(cmd, absl::Now());
  return grpc::Status::OK;
}

int64_t SinkService::accepted() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(commands_.size());
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
