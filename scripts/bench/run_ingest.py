#!/usr/bin/env python3
"""Time twin (end to end: parse, window, store) and chat-miner (parse) on the
same exports, side by side, and print messages/s and the ratio."""
import json
import logging
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # chat-miner's progress bars
from chatminer.chatparsers import TelegramJsonParser, WhatsAppParser  # noqa: E402

logging.disable(logging.INFO)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_twin(twin, export, home):
    shutil.rmtree(home, ignore_errors=True)
    cpu = children_cpu()
    start = time.perf_counter()
    out = subprocess.run([twin, "--batch", "ingest", "--home", str(home), str(export)],
                         capture_output=True, text=True, check=True, env={**os.environ, "TWIN_TZ": "UTC"})
    secs = time.perf_counter() - start
    summary = json.loads(out.stdout.strip().splitlines()[-1])["summary"]
    return summary["messages"], secs, children_cpu() - cpu


def run_chat_miner(parser_cls, path):
    cpu = time.process_time()
    start = time.perf_counter()
    p = parser_cls(str(path))
    p.parse_file()
    n = len(p.parsed_messages.get_df())
    return n, time.perf_counter() - start, time.process_time() - cpu


def load():
    """The 1-minute load average: the machine is shared, so each figure says it."""
    return os.getloadavg()[0]


def main():
    twin, data, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    rows = []
    # Each format: twin, then chat-miner, then twin again, so a change in the
    # machine's load during the (long) chat-miner run shows up on both sides.
    # twin's figure is the mean of its two runs.
    for name, export, parser, target in [
        ("whatsapp", data / "WhatsApp Chat with Bench.txt", WhatsAppParser, data / "WhatsApp Chat with Bench.txt"),
        ("telegram", data / "telegram", TelegramJsonParser, data / "telegram" / "result.json"),
    ]:
        l0 = load()
        tn, ts1, tc1 = run_twin(twin, export, work / f"home-{name}")
        print(f"{name}: twin {tn} messages in {ts1:.2f} s, {tc1:.2f} CPU s (load {l0:.1f})", flush=True)
        l1 = load()
        cn, cs, cc = run_chat_miner(parser, target)
        print(f"{name}: chat-miner {cn} messages in {cs:.2f} s, {cc:.2f} CPU s (load {l1:.1f})", flush=True)
        l2 = load()
        _, ts2, tc2 = run_twin(twin, export, work / f"home-{name}")
        print(f"{name}: twin again {ts2:.2f} s, {tc2:.2f} CPU s (load {l2:.1f})", flush=True)
        rows.append((name, tn, (ts1 + ts2) / 2, (tc1 + tc2) / 2, cn, cs, cc, f"{l0:.1f}/{l1:.1f}/{l2:.1f}"))
    # Wall-clock figures are what a user sees; on a shared machine they swing
    # with the load, so CPU seconds (user + system, all threads) are printed too.
    print(f"{'format':<10}{'messages':>10}{'twin s':>9}{'twin msg/s':>13}{'chat-miner s':>14}{'msg/s':>10}{'ratio':>8}"
          f"{'twin CPU s':>12}{'peer CPU s':>12}{'CPU ratio':>11}  load (twin/peer/twin)")
    for name, tn, ts, tc, cn, cs, cc, loads in rows:
        print(f"{name:<10}{tn:>10}{ts:>9.2f}{tn / ts:>13,.0f}{cs:>14.2f}{cn / cs:>10,.0f}{(tn / ts) / (cn / cs):>7.1f}x"
              f"{tc:>12.2f}{cc:>12.2f}{(tn / tc) / (cn / cc):>10.1f}x  {loads}")


if __name__ == "__main__":
    main()
