fn main() {
    // SAFETY: the first thing twin does, before any thread exists.
    unsafe { twin::train::configure_cpu_threads() };
    std::process::exit(twin::cli::main());
}
