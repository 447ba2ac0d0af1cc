fn main() {
    std::process::exit(twin::cli::main());
}
