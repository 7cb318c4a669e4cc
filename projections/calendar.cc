#include "projections/calendar.h"

#include <algorithm>

namespace tend::projections {
namespace {

template <typename T>
bool InsertSortedImpl(google::protobuf::RepeatedField<T>* set, T v) {
  // Events mostly arrive in time order: appending is the common case.
  if (set->empty() || set->Get(set->size() - 1) < v) {
    set->Add(v);
    return true;
  }
  auto pos = std::lower_bound(set->begin(), set->end(), v);
  if (pos != set->end() && *pos == v) return false;
  int index = static_cast<int>(pos - set->begin());
  set->Add(v);  // grow by one, then rotate the new element into place
  std::rotate(set->begin() + index, set->end() - 1, set->end());
  return true;
}

}  // namespace

bool InsertSorted(google::protobuf::RepeatedField<int32_t>* set, int32_t v) {
  return InsertSortedImpl(set, v);
}
bool InsertSorted(google::protobuf::RepeatedField<int64_t>* set, int64_t v) {
  return InsertSortedImpl(set, v);
}

}  // namespace tend::projections
