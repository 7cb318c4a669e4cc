// The engine's configuration file: YAML with the schema tend.v1.EngineConfig
// (proto/tend/v1/config.proto documents every key and its default). Loaded once at start,
// validated, and turned into the immutable projections::ProjectionConfig; a bad file is refused
// with the key, the value and what is allowed. deploy/engine.yaml is an annotated example.
//
// Thread safety: the functions are pure.
#ifndef TEND_CONFIG_ENGINE_CONFIG_H_
#define TEND_CONFIG_ENGINE_CONFIG_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "events/codec.h"
#include "projections/config.h"
#include "tend/v1/config.pb.h"

namespace tend {

// Validates `config` and fills the defaults of absent fields. kInvalidArgument naming the first
// bad key ("activation.messages_required: 0 is not allowed (allowed: 1..1000)").
absl::StatusOr<projections::ProjectionConfig> BuildProjectionConfig(const v1::EngineConfig& config);

// Parses YAML text (from the file named `source`) and builds the config as above.
absl::StatusOr<projections::ProjectionConfig> ParseEngineConfig(absl::string_view yaml,
                                                                absl::string_view source);

// The `log` section of `config`: which records may move a partition clock, into the
// corresponding fields of `*validation` (the others are left alone). kInvalidArgument naming
// the key.
absl::Status BuildLogTrust(const v1::EngineConfig& config, ValidationOptions* validation);

// Reads the file at `path`; an empty path gives the defaults. With `validation`, its `log`
// section is applied there too (BuildLogTrust).
absl::StatusOr<projections::ProjectionConfig> LoadEngineConfig(
    const std::string& path, ValidationOptions* validation = nullptr);

// The config as YAML that ParseEngineConfig accepts, every key spelled out (for `tend config`
// and for pasting fitted parameters), with the `log` section of `validation`.
std::string FormatEngineConfig(const projections::ProjectionConfig& config,
                               const ValidationOptions& validation = {});

// The parameters the fold itself uses (not only the read-time view): a state directory records
// them beside the projection versions, and the engine refuses to continue folding with other
// values, since the stored state would mix two meanings. Keyed by config key.
std::map<std::string, std::string> FoldParameters(const projections::ProjectionConfig& config);

}  // namespace tend

#endif  // TEND_CONFIG_ENGINE_CONFIG_H_
