/// mimalloc instead of glibc's allocator for the whole binary: an import
/// allocates per message (parse, encode, index) and glibc's malloc/free were
/// a third of its CPU; see BENCHMARKS.md ("Ingest").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // SAFETY: the first thing twin does, before any thread exists.
    unsafe { twin::train::configure_cpu_threads() };
    std::process::exit(twin::cli::main());
}
