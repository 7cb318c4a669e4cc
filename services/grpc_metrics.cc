#include "services/grpc_metrics.h"

#include <google/protobuf/descriptor.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace tend {
namespace {

// One call: made when the call starts, destroyed when it ends. Records the status the server
// sends, or CANCELLED for a call that ended without one (the client cancelled, its deadline
// passed).
class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(GrpcMetrics* metrics, const char* method)
      : metrics_(metrics), method_(method == nullptr ? "" : method), start_(std::chrono::steady_clock::now()) {}
  ~CallInterceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    metrics_->Record(
        method_, static_cast<int>(code),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  GrpcMetrics* const metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(GrpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallInterceptor(metrics_, info->method());
  }

 private:
  GrpcMetrics* const metrics_;
};

}  // namespace

GrpcMetrics::GrpcMetrics(const std::vector<std::string>& services) {
  auto add = [&](const std::string& service, const std::string& method) {
    methods_.push_back(std::make_unique<Method>());
    methods_.back()->service = service;
    methods_.back()->method = method;
    by_full_name_[absl::StrCat("/", service, "/", method)] = methods_.back().get();
  };
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* s =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (s == nullptr) continue;  // not compiled in: its calls count as "other"
    for (int i = 0; i < s->method_count(); ++i) add(s->full_name(), s->method(i)->name());
  }
  // The standard health service (grpc's own implementation, no descriptor linked here).
  add("grpc.health.v1.Health", "Check");
  add("grpc.health.v1.Health", "Watch");
  methods_.push_back(std::make_unique<Method>());
  methods_.back()->service = methods_.back()->method = "other";
}

GrpcMetrics::Method* GrpcMetrics::Find(absl::string_view full_method) {
  auto it = by_full_name_.find(full_method);
  return it != by_full_name_.end() ? it->second : methods_.back().get();
}

void GrpcMetrics::Record(absl::string_view full_method, int code, double seconds) {
  Method* m = Find(full_method);
  if (code < 0 || code >= kCodes) code = static_cast<int>(grpc::StatusCode::UNKNOWN);
  m->calls[static_cast<size_t>(code)].fetch_add(1, std::memory_order_relaxed);
  m->seconds.Observe(seconds);
}

std::vector<GrpcMetrics::MethodSnapshot> GrpcMetrics::Read() const {
  std::vector<MethodSnapshot> out;
  out.reserve(methods_.size());
  for (const auto& m : methods_) {
    MethodSnapshot s;
    s.service = m->service;
    s.method = m->method;
    for (int c = 0; c < kCodes; ++c) {
      s.calls[static_cast<size_t>(c)] = m->calls[static_cast<size_t>(c)].load(std::memory_order_relaxed);
    }
    s.seconds = m->seconds.Read();
    out.push_back(std::move(s));
  }
  return out;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcMetrics::InterceptorFactory() {
  return std::make_unique<Factory>(this);
}

}  // namespace tend
