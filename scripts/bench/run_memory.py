#!/usr/bin/env python3
"""Memory benchmark, twin beside its peers on the same inputs (run by
scripts/bench-memory, which installs the peers):

1. Embeddings: the same chitchat-dataset messages through twin's llama.cpp
   embedder and through sentence-transformers (PyTorch, CPU), same thread
   count; texts/s, the ratio, and how close the vectors are (cosine).
2. Index, on (a) real MiniLM vectors of chitchat messages and (b) clustered
   synthetic 384-d unit vectors: build time, then recall@10 against exact brute
   force (numpy) and single-thread queries/s, for twin's `VectorIndex`
   (hnsw_rs) and hnswlib (the engine under ChromaDB) at the same M,
   ef_construction and ef_search, then the best queries/s of each at
   recall@10 >= the target over the ef sweep.

Twin's and the peer's runs alternate (and swap who goes first), best of a few
each, so load on a shared machine falls on both alike.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def chitchat_texts():
    """Every distinct message of the corpus, in a fixed shuffled order."""
    import chitchat_dataset

    path = pathlib.Path(chitchat_dataset.__file__).with_name("dataset.json")
    data = json.loads(path.read_text())
    seen = set()
    out = []
    for cid in sorted(data):
        for burst in data[cid]["messages"]:
            for m in burst:
                text = " ".join(m["text"].split())
                if text and text not in seen:
                    seen.add(text)
                    out.append(text)
    order = np.random.default_rng(4).permutation(len(out))
    return [out[i] for i in order]


def write_texts(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")


def twin_embed(args, texts, out):
    src = out.with_suffix(".jsonl")
    write_texts(src, texts)
    cmd = [args.bench, "embed", args.model, str(src), str(out), str(args.threads)]
    if args.embed_batch:
        cmd.append(args.embed_batch)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"twin embed failed:\n{res.stderr[-3000:]}")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    return np.fromfile(out, dtype="<f4").reshape(len(texts), info["dim"]), info


def st_model(args):
    import torch
    from sentence_transformers import SentenceTransformer, models

    torch.set_num_threads(args.threads)
    word = models.Transformer(args.minilm, max_seq_length=256)
    pool = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[word, pool], device="cpu")


def st_embed(args, model, texts):
    model.encode(texts[:64], normalize_embeddings=True)  # warm-up, as twin's model load is not timed
    start = time.perf_counter()
    vecs = model.encode(texts, batch_size=args.st_batch, normalize_embeddings=True)
    return vecs, time.perf_counter() - start


def exact_topk(base, queries, k):
    """Brute-force top-k by inner product (the vectors are unit length)."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    step = 50_000
    for lo in range(0, len(base), step):
        s = queries @ base[lo:lo + step].T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        cand_i = np.concatenate([best_i, top + lo], axis=1)
        keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, keep, 1)
        best_i = np.take_along_axis(cand_i, keep, 1)
    return best_i


def recall(found, truth):
    k = truth.shape[1]
    hits = sum(len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


def clustered(n, dim, seed, centers=1000, rank=24):
    """Unit vectors in `centers` clusters, each spread over its own random
    `rank`-dimensional subspace plus a little isotropic noise (real sentence
    embeddings also live near low-dimensional patches)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    basis = rng.standard_normal((centers, rank, dim)).astype(np.float32) / np.sqrt(dim)
    which = np.sort(rng.integers(0, centers, n))
    bounds = np.searchsorted(which, np.arange(centers + 1))
    out = np.empty((n, dim), dtype=np.float32)
    for j in range(centers):
        lo, hi = bounds[j], bounds[j + 1]
        coef = rng.standard_normal((hi - lo, rank)).astype(np.float32) * 0.35
        noise = rng.standard_normal((hi - lo, dim)).astype(np.float32) * (0.05 / np.sqrt(dim))
        out[lo:hi] = c[j] + coef @ basis[j] + noise
    # Rows in random order, so insertion order is not cluster by cluster.
    out = out[rng.permutation(n)]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def hnswlib_shape(index, path):
    """hnswlib's base layer, read back from its saved file: mean links per
    point and the share of points reachable from the entry point along them
    (twin's side reports the same of its graph)."""
    import struct

    index.save_index(str(path))
    try:
        with open(path, "rb") as f:
            head = f.read(80)
        _, _, count, size, _, _ = struct.unpack("<6Q", head[:48])
        _, entry = struct.unpack("<iI", head[48:56])
        _, max_m0, _ = struct.unpack("<3Q", head[56:80])
        # After the header (80 bytes, then mult and ef_construction): per
        # point a u32 whose low 16 bits count its base-layer links, then
        # max_m0 u32 links, then its vector and label.
        rows = np.memmap(path, dtype=np.uint8, mode="r", offset=96, shape=(count, size))
        block = np.ascontiguousarray(rows[:, :4 + 4 * max_m0]).view("<u4")
        del rows
    finally:
        path.unlink()
    deg = (block[:, 0] & 0xFFFF).astype(np.int64)
    links = block[:, 1:]
    seen = np.zeros(count, dtype=bool)
    seen[entry] = True
    front = np.array([entry])
    while len(front):
        nb = links[front][np.arange(max_m0)[None, :] < deg[front][:, None]]
        nb = np.unique(nb)
        front = nb[~seen[nb]]
        seen[front] = True
    return float(deg.mean()), float(seen.mean())


def bench_index(args, key, name, base, queries, work, params=None):
    import hnswlib

    k = args.k
    efs = [int(e) for e in args.ef.split(",")]
    log(f"[{name}] exact top-{k} of {len(queries)} queries over {len(base)} vectors (numpy)")
    truth = exact_topk(base, queries, k)
    base_f, q_f = work / f"{key}-base.f32", work / f"{key}-queries.f32"
    base.astype("<f4").tofile(base_f)
    queries.astype("<f4").tofile(q_f)

    log(f"[{name}] twin: build")
    cmd = [args.bench, "index", str(base_f), str(q_f), str(base.shape[1]), str(k), str(work / f"{key}-twin")]
    if params:
        cmd += [str(params[0]), str(params[1])]
    tw_proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = tw_proc.stdout.readline()
    if not line:
        sys.exit(f"twin index failed (exit {tw_proc.wait()})")
    tw = json.loads(line)
    m, efc = tw["m"], tw["ef_construction"]

    log(f"[{name}] hnswlib: build (M={m}, ef_construction={efc}, {args.threads} threads)")
    p = hnswlib.Index(space="ip", dim=base.shape[1])
    p.init_index(max_elements=len(base), ef_construction=efc, M=m, random_seed=100)
    p.set_num_threads(args.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    p.add_items(base, np.arange(len(base)))
    hl_build, hl_build_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    hl_links, hl_reach = hnswlib_shape(p, work / f"{key}-hnswlib.bin")
    # Queries on one thread each side, one query at a time as twin searches.
    p.set_num_threads(1)

    def twin_pass(ef):
        tw_proc.stdin.write(f"{ef}\n")
        tw_proc.stdin.flush()
        run = json.loads(tw_proc.stdout.readline())
        ids = np.fromfile(run["ids"], dtype="<u8").reshape(len(queries), k).astype(np.int64)
        return recall(ids, truth), run["qps"], run["cpu_qps"]

    def hnswlib_pass(ef):
        p.set_ef(max(ef, k))
        # With num_threads=1 hnswlib answers on the calling thread, so the
        # thread's CPU time is the search's.
        start, cpu_start = time.perf_counter(), time.thread_time()
        labels, _ = p.knn_query(queries, k=k, num_threads=1)
        secs, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
        return recall(labels, truth), len(queries) / secs, len(queries) / cpu

    # Passes alternate between the two (and which goes first) so load on the
    # machine falls on both alike; each keeps its best queries/s, by wall
    # time and by CPU time (the steadier of the two on a shared machine).
    best = {}
    for rnd in range(args.rounds):
        log(f"[{name}] search round {rnd + 1}/{args.rounds}")
        for ef in efs:
            order = [("twin", twin_pass), ("hnswlib", hnswlib_pass)]
            if (rnd + efs.index(ef)) % 2:
                order.reverse()
            for side, run in order:
                rec, qps, cpu_qps = run(ef)
                prev = best.get((side, ef), (rec, 0.0, 0.0))
                best[(side, ef)] = (rec, max(qps, prev[1]), max(cpu_qps, prev[2]))
    tw_proc.stdin.close()
    tw_proc.wait()
    del p

    rows = []
    for ef in efs:
        t, h = best[("twin", ef)], best[("hnswlib", ef)]
        rows.append({"ef": ef, "twin_recall": t[0], "twin_qps": t[1], "twin_cpu_qps": t[2],
                     "hnswlib_recall": h[0], "hnswlib_qps": h[1], "hnswlib_cpu_qps": h[2]})

    def at_target(side, col="qps"):
        ok = [r for r in rows if r[f"{side}_recall"] >= args.target_recall]
        return max(ok, key=lambda r: r[f"{side}_{col}"]) if ok else None

    return {"name": name, "points": len(base), "queries": len(queries), "m": m, "ef_construction": efc,
            "twin_build_s": tw["build_secs"], "twin_layout_s": tw["layout_secs"], "hnswlib_build_s": hl_build,
            "twin_build_cpu_s": tw["build_cpu_secs"], "hnswlib_build_cpu_s": hl_build_cpu,
            "twin_links": tw["links"], "twin_reachable": tw["reachable"],
            "hnswlib_links": hl_links, "hnswlib_reachable": hl_reach,
            "rows": rows, "rounds": args.rounds, "target": args.target_recall,
            "twin_at_target": at_target("twin"), "hnswlib_at_target": at_target("hnswlib"),
            "twin_cpu_at_target": at_target("twin", "cpu_qps"),
            "hnswlib_cpu_at_target": at_target("hnswlib", "cpu_qps")}


def print_index(r):
    print(f"\n{r['name']}: {r['points']:,} vectors, {r['queries']} queries, M={r['m']}, "
          f"ef_construction={r['ef_construction']}; build twin {r['twin_build_s']:.1f} s wall / "
          f"{r['twin_build_cpu_s']:.1f} s CPU (of which {r['twin_layout_s']:.1f} s the flat search layout), "
          f"hnswlib {r['hnswlib_build_s']:.1f} s wall / {r['hnswlib_build_cpu_s']:.1f} s CPU "
          f"(twin's speed {r['hnswlib_build_s'] / r['twin_build_s']:.2f}x by wall, "
          f"{r['hnswlib_build_cpu_s'] / r['twin_build_cpu_s']:.2f}x by CPU); "
          f"queries on 1 thread each, best of {r['rounds']} alternating passes")
    print(f"base layer: twin {r['twin_links']:.2f} links per point, {r['twin_reachable']:.2%} reachable from the "
          f"entry; hnswlib {r['hnswlib_links']:.2f} links per point, {r['hnswlib_reachable']:.2%} reachable")
    print(f"{'ef':>5}{'twin R@10':>11}{'twin q/s':>10}{'cpu q/s':>9}{'hnswlib R@10':>14}{'hnswlib q/s':>13}"
          f"{'cpu q/s':>9}{'ratio':>8}{'cpu ratio':>11}")
    for row in r["rows"]:
        print(f"{row['ef']:>5}{row['twin_recall']:>11.4f}{row['twin_qps']:>10,.0f}{row['twin_cpu_qps']:>9,.0f}"
              f"{row['hnswlib_recall']:>14.4f}{row['hnswlib_qps']:>13,.0f}{row['hnswlib_cpu_qps']:>9,.0f}"
              f"{row['twin_qps'] / row['hnswlib_qps']:>7.2f}x{row['twin_cpu_qps'] / row['hnswlib_cpu_qps']:>10.2f}x")
    for label, col, t, h in [("wall", "qps", r["twin_at_target"], r["hnswlib_at_target"]),
                             ("CPU", "cpu_qps", r["twin_cpu_at_target"], r["hnswlib_cpu_at_target"])]:
        if t and h:
            print(f"at recall@10 >= {r['target']}, by {label} time: twin {t['twin_' + col]:,.0f} q/s "
                  f"(ef {t['ef']}, R@10 {t['twin_recall']:.4f}), hnswlib {h['hnswlib_' + col]:,.0f} q/s "
                  f"(ef {h['ef']}, R@10 {h['hnswlib_recall']:.4f}): ratio {t['twin_' + col] / h['hnswlib_' + col]:.2f}x")
        else:
            print(f"at recall@10 >= {r['target']}: twin {'reached' if t else 'not reached'}, "
                  f"hnswlib {'reached' if h else 'not reached'} at these ef values")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="the bench_memory example binary")
    ap.add_argument("--model", required=True, help="twin's MiniLM GGUF")
    ap.add_argument("--minilm", required=True, help="the all-MiniLM-L6-v2 folder (for sentence-transformers)")
    ap.add_argument("--work", type=pathlib.Path, required=True)
    ap.add_argument("--real", type=int, default=100_000, help="real vectors in the index")
    ap.add_argument("--synthetic", type=int, default=1_000_000, help="synthetic vectors (0: skip)")
    ap.add_argument("--synthetic-centers", type=int, default=1000,
                    help="clusters of the synthetic set; N/centers points per cluster sets how hard it is "
                    "(100k vectors in 100 clusters are as dense as 1M in 1000)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--embed-sample", type=int, default=20_000, help="texts timed against sentence-transformers")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--st-batch", type=int, default=32)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", default="10,12,14,16,20,24,32,48,64,100")
    ap.add_argument("--params", help="M,EF_CONSTRUCTION for both sides on every set (default: twin's own)")
    ap.add_argument("--synthetic-params", help="M,EF_CONSTRUCTION for both sides on the synthetic set "
                    "(default: --params); a cheaper build keeps 1M vectors within minutes on few cores")
    ap.add_argument("--rounds", type=int, default=3, help="alternating search passes per side; best q/s kept")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--embed-rounds", type=int, default=2)
    ap.add_argument("--embed-batch", help="twin's batch packing to try, TOKENS,SEQS (default: twin's own)")
    args = ap.parse_args()

    def params(text):
        if not text:
            return None
        try:
            m, efc = (int(x) for x in text.split(","))
        except ValueError:
            sys.exit(f"expected M,EF_CONSTRUCTION (two numbers), got {text!r}")
        return m, efc

    args.params = params(args.params)
    args.synthetic_params = params(args.synthetic_params) or args.params
    args.work.mkdir(parents=True, exist_ok=True)
    results = {"threads": args.threads}

    texts = chitchat_texts()
    need = args.real + args.queries
    if need > len(texts):
        sys.exit(f"the corpus has {len(texts)} distinct messages; ask for at most {len(texts) - args.queries} real vectors")
    sample = texts[:args.embed_sample]

    if sample:
        # Alternating runs, best of each, so load on the machine falls on both alike.
        st = st_model(args)
        best_t = best_s = 0.0
        for rnd in range(args.embed_rounds):
            log(f"[embed] round {rnd + 1}/{args.embed_rounds}: twin and sentence-transformers, "
                f"{len(sample)} texts on {args.threads} threads")
            for side in (["twin", "st"] if rnd % 2 == 0 else ["st", "twin"]):
                if side == "twin":
                    tv, ti = twin_embed(args, sample, args.work / "sample-twin.f32")
                    best_t = max(best_t, ti["per_s"])
                else:
                    sv, s_secs = st_embed(args, st, sample)
                    best_s = max(best_s, len(sample) / s_secs)
        del st
        cos = np.sum(tv * sv, axis=1)
        emb = {"texts": len(sample), "twin_per_s": best_t, "st_per_s": best_s,
               "batch_tokens": ti["batch_tokens"], "batch_seqs": ti["batch_seqs"],
               "cos_mean": float(cos.mean()), "cos_min": float(cos.min())}
        results["embed"] = emb
        print(f"embeddings: {len(sample):,} chitchat messages, {args.threads} threads, best of {args.embed_rounds} "
              f"alternating runs: twin {emb['twin_per_s']:,.0f}/s (batches of <= {ti['batch_tokens']} tokens, "
              f"{ti['batch_seqs']} texts), sentence-transformers {emb['st_per_s']:,.0f}/s (batch {args.st_batch}), "
              f"ratio {emb['twin_per_s'] / emb['st_per_s']:.2f}x; "
              f"cosine twin vs sentence-transformers mean {emb['cos_mean']:.5f}, min {emb['cos_min']:.5f}", flush=True)

    cache = args.work / f"real-{need}-{os.path.getsize(args.model)}.f32" if args.real else None
    if not args.real:
        pass
    elif cache.exists():
        vecs = np.fromfile(cache, dtype="<f4").reshape(need, -1)
    else:
        log(f"[embed] twin: {need} texts for the index")
        vecs, _ = twin_embed(args, texts[:need], args.work / "real-tmp.f32")
        os.replace(args.work / "real-tmp.f32", cache)
    if args.real:
        r = bench_index(args, "real", "real MiniLM (chitchat)", vecs[:args.real], vecs[args.real:], args.work,
                        args.params)
        print_index(r)
        results["real"] = r

    if args.synthetic:
        log(f"[synthetic] {args.synthetic} clustered vectors in {args.synthetic_centers} clusters")
        base = clustered(args.synthetic + args.queries, 384, seed=11, centers=args.synthetic_centers)
        r = bench_index(args, "synthetic", f"synthetic clustered ({args.synthetic_centers} clusters)",
                        base[:args.synthetic], base[args.synthetic:], args.work, args.synthetic_params)
        print_index(r)
        results["synthetic"] = r
    (args.work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
