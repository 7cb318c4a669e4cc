// SIGINT/SIGTERM handling for long-running subcommands: the handler only sets a flag that the
// loops poll; the loops then commit and exit cleanly.
#ifndef TEND_TOOLS_SIGNALS_H_
#define TEND_TOOLS_SIGNALS_H_

#include <atomic>

namespace tend {

// Installs the handlers (idempotent) and returns the flag they set.
std::atomic<bool>& InstallStopSignals();

}  // namespace tend

#endif  // TEND_TOOLS_SIGNALS_H_
