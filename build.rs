//! Links twin against the one ggml that llama.cpp and whisper.cpp share,
//! built by `scripts/build-ggml.sh` and linked at `.ggml` (see .cargo/config.toml).

use std::path::Path;

fn main() {
    let repo = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let link = Path::new(&repo).join(".ggml");
    println!("cargo:rerun-if-changed={}", link.display());
    let Ok(prefix) = link.canonicalize() else {
        panic!(
            "\n\ntwin: the shared ggml build is missing ({}).\nRun: bash scripts/build-ggml.sh\n(scripts/run.sh and scripts/test.sh run it for you.)\n",
            link.display()
        );
    };
    let lib = prefix.join("lib");
    // A rebuilt ggml (new flags, new sources) relinks twin.
    println!(
        "cargo:rerun-if-changed={}",
        prefix.join(".complete").display()
    );
    println!("cargo:rustc-link-search=native={}", lib.display());
}
