//! twin's side of `scripts/bench-memory` (run by hand, never in CI; built only
//! with `--features bench`). Four commands:
//!
//!   bench_memory weights
//!       prints how twin stores the model's matrices on this machine (f32/bf16).
//!   bench_memory convert MINILM_DIR OUT.gguf
//!       converts the downloaded all-MiniLM-L6-v2 folder as twin does.
//!   bench_memory embed GGUF TEXTS.jsonl OUT.f32 THREADS [TOKENS,SEQS]
//!       embeds every text (a JSON string per line) with twin's llama.cpp
//!       embedder in one `embed` call (TOKENS,SEQS: another batch packing to
//!       try), writes the vectors as raw little-endian f32 rows, and reports
//!       texts/s.
//!   bench_memory index BASE.f32 QUERIES.f32 DIM K OUT_PREFIX [M EF_CONSTRUCTION]
//!       builds twin's `VectorIndex` over BASE (all cores, as twin indexes,
//!       including the flat layout searches run on; at twin's M and
//!       ef_construction unless given) and reports build seconds and CPU
//!       seconds; then, for each EF read from stdin, answers every query on
//!       one thread, writes the ids as raw little-endian u64 rows
//!       (`OUT_PREFIX-efN.u64`) and reports queries/s.
//!
//! Each prints JSON lines.
//!
//! The Python side (scripts/bench/run_memory.py) runs the peers on the same
//! files and computes recall against brute force.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use twin::memory::convert;
use twin::memory::embed::{self, Embedder, LlamaEmbedder};
use twin::memory::index::{self, VectorIndex};

fn read_f32(path: &Path, dim: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes.len() % (4 * dim),
        0,
        "{}: not rows of {dim} f32",
        path.display()
    );
    bytes
        .chunks_exact(4 * dim)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        })
        .collect()
}

/// CPU seconds used so far by the whole process (`RUSAGE_SELF`, every
/// thread) or by the calling thread alone: on a shared machine these move far
/// less with other people's load than wall time does.
fn cpu_secs(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn embed(args: &[String]) {
    let (model, texts, out, threads, batch) = match args {
        [m, t, o, th] => (m, t, o, th, None),
        [m, t, o, th, b] => (m, t, o, th, Some(b)),
        _ => panic!("usage: bench_memory embed GGUF TEXTS.jsonl OUT.f32 THREADS [TOKENS,SEQS]"),
    };
    let threads: usize = threads.parse().expect("THREADS is a number");
    let file = std::fs::File::open(texts).unwrap_or_else(|e| panic!("{texts}: {e}"));
    let texts: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map(|l| serde_json::from_str(&l.expect("readable texts")).expect("a JSON string per line"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut e = LlamaEmbedder::load(Path::new(model), threads).expect("embedding model loads");
    let (mut tokens, mut seqs) = (embed::BATCH_TOKENS, embed::BATCH_SEQS);
    if let Some(b) = batch {
        let (t, s) = b.split_once(',').expect("batch is TOKENS,SEQS");
        tokens = t.parse().expect("TOKENS is a number");
        seqs = s.parse().expect("SEQS is a number");
        e = e.with_batch(tokens, seqs);
    }
    let start = Instant::now();
    let vecs = e.embed(&refs).expect("embedding runs");
    let secs = start.elapsed().as_secs_f64();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).expect("output is writable"));
    for v in &vecs {
        for x in v {
            w.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    w.flush().unwrap();
    println!(
        "{}",
        serde_json::json!({
            "texts": vecs.len(), "dim": e.dim(), "threads": threads,
            "batch_tokens": tokens, "batch_seqs": seqs,
            "secs": secs, "per_s": vecs.len() as f64 / secs,
        })
    );
}

fn search(args: &[String]) {
    let (base, queries, dim, k, prefix, params) = match args {
        [b, q, d, k, p] => (b, q, d, k, p, None),
        [b, q, d, k, p, m, efc] => (b, q, d, k, p, Some((m, efc))),
        _ => panic!(
            "usage: bench_memory index BASE.f32 QUERIES.f32 DIM K OUT_PREFIX [M EF_CONSTRUCTION]"
        ),
    };
    let (m, efc) = params.map_or((index::MAX_CONN, index::EF_CONSTRUCTION), |(m, e)| {
        (
            m.parse().expect("M is a number"),
            e.parse().expect("EF_CONSTRUCTION is a number"),
        )
    });
    let dim: usize = dim.parse().expect("DIM is a number");
    let k: usize = k.parse().expect("K is a number");
    let base = read_f32(Path::new(base), dim);
    let queries = read_f32(Path::new(queries), dim);
    let items: Vec<(u64, Vec<f32>)> = base
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();

    let start = Instant::now();
    let cpu_start = cpu_secs(libc::RUSAGE_SELF);
    let mut ix = VectorIndex::with_params(dim, items.len(), m, efc);
    ix.insert_many(&items);
    let insert_secs = start.elapsed().as_secs_f64();
    // As twin does after building or loading: lay the graph out for search.
    let flat = ix.prepare();
    let build_secs = start.elapsed().as_secs_f64();
    let build_cpu = cpu_secs(libc::RUSAGE_SELF) - cpu_start;
    drop(items);
    // The graph's shape, beside recall: base-layer links per point and the
    // share of points reachable from the entry along them.
    let (links, reachable) = flat
        .as_ref()
        .map_or((0.0, 0.0), |f| (f.mean_links(), f.reachable_share()));
    drop(flat);

    println!(
        "{}",
        serde_json::json!({
            "points": ix.points(), "queries": queries.len(), "dim": dim, "k": k,
            "m": m, "ef_construction": efc,
            "build_secs": build_secs, "layout_secs": build_secs - insert_secs,
            "build_cpu_secs": build_cpu,
            "links": links, "reachable": reachable,
        })
    );
    std::io::stdout().flush().unwrap();
    // Then one search pass per line on stdin ("EF"), so the driver can
    // alternate twin's passes with the peer's under the same load.
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("readable stdin");
        let ef: usize = line.trim().parse().expect("EF is a number");
        let mut ids = Vec::with_capacity(queries.len() * k);
        let start = Instant::now();
        let cpu_start = cpu_secs(libc::RUSAGE_THREAD);
        for q in &queries {
            // As twin searches: one query at a time, every slot live.
            let hits = ix.search(q, k, ef, None);
            ids.extend((0..k).map(|i| hits.get(i).map_or(u64::MAX, |h| h.0)));
        }
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_secs(libc::RUSAGE_THREAD) - cpu_start;
        let path = format!("{prefix}-ef{ef}.u64");
        let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!(
            "{}",
            serde_json::json!({
                "ef": ef, "secs": secs, "qps": queries.len() as f64 / secs,
                "cpu_secs": cpu, "cpu_qps": queries.len() as f64 / cpu, "ids": path,
            })
        );
        std::io::stdout().flush().unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // The weights twin itself converts to on this machine (its default
        // model), so the bench times what a user runs.
        Some("weights") => println!("{}", convert::Weights::preferred().name()),
        Some("convert") if args.len() == 3 => {
            convert::bert_to_gguf_as(
                Path::new(&args[1]),
                Path::new(&args[2]),
                convert::Weights::preferred(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        Some("embed") => embed(&args[1..]),
        Some("index") => search(&args[1..]),
        _ => {
            eprintln!(
                "usage: bench_memory weights|convert|embed|index ... (see scripts/bench-memory)"
            );
            std::process::exit(2);
        }
    }
}
