#!/usr/bin/env python3
"""Write large WhatsApp (.txt) and Telegram (result.json) exports for the ingest
benchmark from the chitchat-dataset corpus (PyPI, MIT): the corpus is repeated,
each pass shifted by a year, until N messages, as one long chat."""
import argparse
import datetime
import json
import pathlib
import zipfile

import chitchat_dataset  # noqa: F401  (installed by scripts/bench-ingest)


def corpus():
    path = pathlib.Path(chitchat_dataset.__file__).with_name("dataset.json")
    data = json.loads(path.read_text())
    names = {}
    msgs = []
    for cid in sorted(data):
        for burst in data[cid]["messages"]:
            for m in burst:
                text = m["text"].replace("\r", "").strip()
                if not text:
                    continue
                name = names.setdefault(m["sender"], f"Person {len(names) + 1}")
                t = datetime.datetime.strptime(m["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
                msgs.append((t, name, text))
    msgs.sort(key=lambda m: m[0])
    return msgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = corpus()
    out = []
    shift = 0
    while len(out) < args.messages:
        for t, who, text in base:
            out.append((t + datetime.timedelta(days=366 * shift), who, text))
            if len(out) >= args.messages:
                break
        shift += 1
    with open(args.out / "WhatsApp Chat with Bench.txt", "w", encoding="utf-8") as f:
        for t, who, text in out:
            f.write(f"{t:%d/%m/%Y, %H:%M} - {who}: {text}\n")
    tg = {"name": "Bench", "type": "private_group", "id": 1, "messages": []}
    for i, (t, who, text) in enumerate(out):
        tg["messages"].append({
            "id": i + 1, "type": "message", "date": t.strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(int(t.replace(tzinfo=datetime.timezone.utc).timestamp())),
            "from": who, "from_id": "user" + who.split()[-1], "text": text,
            "text_entities": [{"type": "plain", "text": text}],
        })
    (args.out / "telegram").mkdir(exist_ok=True)
    with open(args.out / "telegram" / "result.json", "w", encoding="utf-8") as f:
        json.dump(tg, f, ensure_ascii=False, indent=1)
    print(f"{len(out)} messages in {args.out}")


if __name__ == "__main__":
    main()
