// The tend binary's jemalloc options (linked in tools/CMakeLists.txt; why jemalloc: docs/design.md,
// "Allocator"). jemalloc reads them from this symbol at startup; MALLOC_CONF in the environment
// overrides them (jemalloc(3), "TUNING").
//
// Unused pages go back to the system after a minute instead of jemalloc's default 10 s: at 10 s
// the engine returned and faulted in again the memory of each commit batch, and `tend bench`
// without rules lost about a fifth of its rate (docs/benchmarks.md, "Cost per decision").
//
// thp:always: jemalloc marks its mappings MADV_HUGEPAGE (jemalloc(3), opt.thp), so where the
// kernel's transparent huge pages are `madvise` or `always`, memory is faulted in 2 MiB at a time
// instead of 4 KiB. While an engine grows (its cache filling, its first large commit batches and
// memtables) its page faults were a tenth of its CPU: `tend bench`, which measures a fresh
// engine, took a fifth less CPU per event with and without rules (docs/benchmarks.md, "Huge
// pages"). MALLOC_CONF=thp:never turns it off.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "dirty_decay_ms:60000,muzzy_decay_ms:60000,thp:always";
}
