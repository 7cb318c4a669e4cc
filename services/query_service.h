// tend.v1.Query: reads committed patient state for backend services.
// Thread-safe: reads go straight to RocksDB.
#ifndef TEND_SERVICES_QUERY_SERVICE_H_
#define TEND_SERVICES_QUERY_SERVICE_H_

#include "engine/storage.h"
#include "tend/v1/services.grpc.pb.h"

namespace tend {

class QueryService final : public v1::Query::Service {
 public:
  // `storage` is borrowed and must outlive the service.
  explicit QueryService(const Storage* storage) : storage_(storage) {}

  grpc::Status GetPatient(grpc::ServerContext* context, const v1::GetPatientRequest* request,
                          v1::GetPatientResponse* response) override;

 private:
  const Storage* const storage_;
};

}  // namespace tend

#endif  // TEND_SERVICES_QUERY_SERVICE_H_
