#!/usr/bin/env python3
"""Time twin (end to end: parse, window, store) and chat-miner (parse) on the
same exports, side by side, and print messages/s and the ratio."""
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # chat-miner's progress bars
from chatminer.chatparsers import TelegramJsonParser, WhatsAppParser  # noqa: E402

logging.disable(logging.INFO)


def run_twin(twin, export, home):
    shutil.rmtree(home, ignore_errors=True)
    start = time.perf_counter()
    out = subprocess.run([twin, "--batch", "ingest", "--home", str(home), str(export)],
                         capture_output=True, text=True, check=True, env={**os.environ, "TWIN_TZ": "UTC"})
    secs = time.perf_counter() - start
    summary = json.loads(out.stdout.strip().splitlines()[-1])["summary"]
    return summary["messages"], secs


def run_chat_miner(parser_cls, path):
    start = time.perf_counter()
    p = parser_cls(str(path))
    p.parse_file()
    n = len(p.parsed_messages.get_df())
    return n, time.perf_counter() - start


def main():
    twin, data, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    rows = []
    for name, export, parser, target in [
        ("whatsapp", data / "WhatsApp Chat with Bench.txt", WhatsAppParser, data / "WhatsApp Chat with Bench.txt"),
        ("telegram", data / "telegram", TelegramJsonParser, data / "telegram" / "result.json"),
    ]:
        tn, ts = run_twin(twin, export, work / f"home-{name}")
        cn, cs = run_chat_miner(parser, target)
        rows.append((name, tn, ts, cn, cs))
    print(f"{'format':<10}{'messages':>10}{'twin s':>9}{'twin msg/s':>13}{'chat-miner s':>14}{'msg/s':>10}{'ratio':>8}")
    for name, tn, ts, cn, cs in rows:
        print(f"{name:<10}{tn:>10}{ts:>9.2f}{tn / ts:>13,.0f}{cs:>14.2f}{cn / cs:>10,.0f}{(tn / ts) / (cn / cs):>7.1f}x")


if __name__ == "__main__":
    main()
