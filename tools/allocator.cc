// The tend binary's jemalloc options (linked in tools/CMakeLists.txt; why jemalloc: docs/design.md,
// "Allocator"). jemalloc reads them from this symbol at startup; MALLOC_CONF in the environment
// overrides them (jemalloc(3), "TUNING").
//
// Unused pages go back to the system after a minute instead of jemalloc's default 10 s: at 10 s
// the engine returned and faulted in again the memory of each commit batch, and `tend bench`
// without rules lost about a fifth of its rate (docs/benchmarks.md, "Cost per decision").
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "dirty_decay_ms:60000,muzzy_decay_ms:60000";
}
