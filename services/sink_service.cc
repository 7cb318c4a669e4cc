#include "services/sink_service.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace tend {

absl::StatusOr<std::unique_ptr<SinkService>> SinkService::Create(const std::string& out_path) {
  std::unique_ptr<SinkService> sink(new SinkService());
  if (out_path.empty()) return sink;
  absl::MutexLock lock(&sink->mu_);
  {
    std::ifstream in(out_path);
    std::string line;
    int64_t line_no = 0;
    while (in && std::getline(in, line)) {
      ++line_no;
      v1::ReminderCommand cmd;
      google::protobuf::util::JsonParseOptions options;
      if (!google::protobuf::util::JsonStringToMessage(line, &cmd, options).ok()) {
        // A line cut short by a crash mid-write was never acknowledged: the sender retries it.
        continue;
      }
      if (sink->seen_.insert(cmd.command_id()).second) sink->commands_.push_back(std::move(cmd));
    }
  }
  sink->out_.open(out_path, std::ios::app);
  if (!sink->out_) return absl::UnavailableError(absl::StrCat("cannot append to ", out_path));
  sink->has_out_ = true;
  return sink;
}

grpc::Status SinkService::Deliver(grpc::ServerContext*, const v1::DeliverRequest* request,
                                  v1::DeliverResponse* response) {
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
