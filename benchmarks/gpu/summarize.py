"""Markdown tables from bench.py's results.jsonl files (one row per run, grouped by server).

Usage: ``python benchmarks/gpu/summarize.py RESULTS.jsonl [MORE.jsonl ...]``
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any


def main(paths: list[str]) -> None:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("workload") != "parity":
                    rows[r.get("server", "?")].append(r)
    for server, runs in rows.items():
        print(f"\n### server: {server}\n")
        print("| workload | strategy | items/s | GPU busy % | client CPU ms/item | n |")
        print("|---|---|---:|---:|---:|---:|")
        for r in runs:
            if "error" in r:
                print(f"| {r['workload']} | {r['strategy']} | FAILED: {r['error'][:80]} | | | |")
                continue
            flag = "" if r.get("ok") else " (vectors NOT ok)"
            print(
                f"| {r['workload']} | {r['strategy']}{flag} | {r['items_per_s']:.1f} | "
                f"{r['gpu_busy_pct']} | {r['cpu_ms_per_item']:.2f} | {r['n']} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
