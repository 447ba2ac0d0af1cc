/// mimalloc instead of glibc's allocator for the whole binary: an import
/// allocates per message (parse, encode, index) and glibc's malloc/free were
/// a third of its CPU; see BENCHMARKS.md ("Ingest").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option setter (part of the library libmimalloc-sys links in;
// the crate's Rust bindings for it sit behind a feature with one more dependency).
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay`'s index in mimalloc's `mi_option_t` (the same in its
/// v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// How long mimalloc keeps freed memory before handing it back to the OS, in
/// milliseconds (its default is 1 s). A LoRA training step frees and
/// reallocates hundreds of megabytes of activations and gradients; with the
/// default, that memory went back to the OS between uses and came back as fresh
/// zeroed pages: ~33,000 page faults in 8 steps of SmolLM2, the kernel's page
/// clearing showing as the largest item of the training thread's profile. At
/// 30 s no step faults a page in after the first; idle memory still goes back.
const PURGE_DELAY_MS: std::ffi::c_long = 30_000;

fn main() {
    // SAFETY: mimalloc's options may be set at any time; it is called before
    // any other thread exists anyway.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    // No transparent huge pages for this process: the first touch of any
    // byte of a fresh 2 MiB region has the kernel clear all of it, and an
    // import (maps that grow, buffers per batch, in regions mimalloc had
    // advised huge before main) spent a quarter of its time in the kernel's
    // page clearing: 1.6 of 4.9 CPU s for 1M WhatsApp messages, 0.6 without.
    // See BENCHMARKS.md ("Ingest"). Checked at each fault, so it covers
    // what was mapped before this line too.
    // SAFETY: a plain prctl on this process; no memory is touched.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    // SAFETY: the first thing twin does, before any thread exists.
    unsafe { twin::train::configure_cpu_threads() };
    std::process::exit(twin::cli::main());
}
