#!/usr/bin/env python3
"""Build twin's demo export from the chitchat-dataset corpus (PyPI, MIT).

Takes the most prolific speaker, names them "Sam Rivera", and writes their
conversations with their busiest partners as WhatsApp "Export chat" files
(Android, 24-hour, day/month/year), zipped as one export: demo/chitchat-demo.zip.
The binary bundles that zip (`twin demo`). Deterministic: same corpus, same zip.

Usage: python3 scripts/make-demo.py [--messages N]
"""
import argparse
import collections
import datetime
import io
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
ME = "Sam Rivera"
PARTNERS = ["Alex Chen", "Priya Patel", "Jordan Lee", "Maya Okafor", "Luca Rossi", "Noor Haddad",
            "Ben Carter", "Ines Duarte", "Kenji Sato", "Zoe Martin", "Omar Farouk", "Lena Vogel"]


def load_corpus():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                        "chitchat-dataset==0.9.0"], check=True)
        wheel = next(pathlib.Path(tmp).glob("chitchat_dataset-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            return json.loads(z.read("chitchat_dataset/dataset.json"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=4000, help="about how many messages to keep")
    args = ap.parse_args()
    data = load_corpus()
    counts = collections.Counter(m["sender"] for c in data.values() for b in c["messages"] for m in b)
    me = counts.most_common(1)[0][0]
    # Conversations of `me`, grouped by the other person, busiest partners first.
    by_partner = collections.defaultdict(list)
    for cid in sorted(data):
        senders = {m["sender"] for b in data[cid]["messages"] for m in b}
        if me in senders and len(senders) == 2:
            by_partner[(senders - {me}).pop()].append(cid)
    partners = sorted(by_partner, key=lambda p: (-sum(len([m for b in data[c]["messages"] for m in b])
                                                      for c in by_partner[p]), p))[:len(PARTNERS)]
    buf = io.BytesIO()
    kept = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, partner in zip(PARTNERS, partners):
            lines = []
            for cid in by_partner[partner]:
                for burst in data[cid]["messages"]:
                    for m in burst:
                        t = datetime.datetime.strptime(m["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
                        who = ME if m["sender"] == me else name
                        text = m["text"].replace("\r", "").strip()
                        if text:
                            lines.append(f"{t:%d/%m/%Y, %H:%M} - {who}: {text}")
                if len(lines) >= args.messages // len(PARTNERS):
                    break
            kept += len(lines)
            info = zipfile.ZipInfo(f"WhatsApp Chat with {name}.txt", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, "\n".join(lines) + "\n")
    out = ROOT / "demo" / "chitchat-demo.zip"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(buf.getvalue())
    print(f"{out}: {kept} messages, {out.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
