"""Markdown tables from bench.py's and ceiling.py's results.jsonl files (grouped by server).

Usage: ``python benchmarks/gpu/summarize.py RESULTS.jsonl [MORE.jsonl ...]``

Every row shows ``system / ceiling``: its items/s over what plain transformers absorbs on the
GPU alone for the same workload (``ceiling.py``'s best batch), when a ceiling row is in the files,
and ``vs best hand`` : its items/s over the best hand-written row of that workload on that server,
threads or processes (for camera photos the thread client is CPU-bound: the process one is
the fair baseline).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

# Workloads measured against another workload's ceiling (same images as the server sees them).
CEILING_OF = {"camera photos pre-resized 1536x1152 (server only)": "camera photos 12 MP JPEG"}


def main(paths: list[str]) -> None:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    ceilings: dict[str, dict[str, Any]] = {}
    prep: list[dict[str, Any]] = []
    for path in paths:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if "mode" in r:  # prep_scaling.py
                    prep.append(r)
                elif r.get("strategy") == "ceiling":
                    ceilings[r["workload"]] = r
                elif str(r.get("strategy", "")).startswith("ceiling"):
                    continue
                elif r.get("workload") != "parity":
                    rows[r.get("server", "?")].append(r)
    if prep:
        print("\n### 12 MP photo preparation: photos/s (efficiency = rate / (N x 1-worker rate))\n")
        counts = sorted({r["workers"] for r in prep})
        print("| source | mode | " + " | ".join(f"N={n}" for n in counts) + " |")
        print("|---|---|" + "---:|" * len(counts))
        table: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
        for r in prep:
            table[(r.get("src", "-"), r["mode"])][r["workers"]] = r
        for (src, mode), by_n in table.items():
            cells = [
                f"{by_n[n]['per_s']:.1f} ({by_n[n]['efficiency']:.2f})" if n in by_n else ""
                for n in counts
            ]
            print(f"| {src} | {mode} | " + " | ".join(cells) + " |")
    if ceilings:
        print("\n### ceiling: plain transformers, GPU only (best batch)\n")
        print("| workload | items/s | batch | tokens/item | GPU busy % |")
        print("|---|---:|---:|---:|---:|")
        for w, c in ceilings.items():
            print(
                f"| {w} | {c['items_per_s']:.1f} | {c['batch']} | {c['tokens_per_item']} | "
                f"{c['gpu_busy_pct']} |"
            )
    for server, runs in rows.items():
        best_hand: dict[str, float] = {}
        for r in runs:
            if str(r.get("strategy", "")).startswith("hand-written") and "items_per_s" in r:
                best_hand[r["workload"]] = max(best_hand.get(r["workload"], 0.0), r["items_per_s"])
        print(f"\n### server: {server}\n")
        print(
            "| workload | strategy | items/s | system / ceiling | vs best hand | GPU busy % "
            "| client CPU ms/item | n |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in runs:
            if "error" in r:
                print(
                    f"| {r['workload']} | {r['strategy']} | FAILED: {r['error'][:80]} | | | | | |"
                )
                continue
            flag = "" if r.get("ok") else " (vectors NOT ok)"
            ceiling = ceilings.get(CEILING_OF.get(r["workload"], r["workload"]))
            share = f"{r['items_per_s'] / ceiling['items_per_s']:.2f}" if ceiling else "-"
            hand = best_hand.get(r["workload"])
            vs_hand = f"{r['items_per_s'] / hand:.2f}" if hand else "-"
            # Work in child processes (the process-pool client's) is the client's CPU too.
            cpu = r["cpu_ms_per_item"] + r.get("child_cpu_ms_per_item", 0.0)
            print(
                f"| {r['workload']} | {r['strategy']}{flag} | {r['items_per_s']:.1f} | {share} | "
                f"{vs_hand} | {r['gpu_busy_pct']} | {cpu:.2f} | {r['n']} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
