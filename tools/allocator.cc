// The tend binary's jemalloc options (linked in tools/CMakeLists.txt; why jemalloc: docs/design.md,
// "Allocator"). jemalloc reads them from this symbol at startup; MALLOC_CONF in the environment
// overrides them (jemalloc(3), "TUNING").
//
// Unused pages go back to the system after a minute instead of jemalloc's default 10 s: at 10 s
// the engine returned and faulted in again the memory of each commit batch, and `tend bench`
// without rules lost about a fifth of its rate (docs/benchmarks.md, "Cost per decision").
//
// Huge pages are the system's choice (jemalloc's opt.thp "default": no madvise of its own). From
// 2026-12-04 to 12-05 the binary asked for them (thp:always); on this machine a 2 MiB fault then
// cost ~10x a 4 KiB one per byte, and `tend bench` - a fresh engine growing by ~1 GB a phase -
// took twice the CPU per event with and without rules, while replays were 0-21% cheaper with
// them (docs/benchmarks.md, "Huge pages, again"). MALLOC_CONF=thp:always asks for them where
// they pay (docs/deployment.md).
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "dirty_decay_ms:60000,muzzy_decay_ms:60000";
}
