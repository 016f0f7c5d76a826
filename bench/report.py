"""Markdown tables from bench/results/*.json (or the files named), for docs/benchmarks.md and
for comparing runs: ``python bench/report.py [FILE.json ...]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TIMES = "\u00d7"  # the multiplication sign, as docs/benchmarks.md writes ratios


def value(row: dict[str, Any]) -> str:
    median = row.get("median")
    if median is None:
        return "failed" if row.get("failed") else "-"
    if row["unit"] == "s":
        return f"{median:.3f} s" if median >= 0.1 else f"{median * 1000:.1f} ms"
    return f"{median:g} {row['unit']}"


def goal(row: dict[str, Any]) -> str:
    if "goal" not in row:
        return ""
    g = row["goal"]
    bound = f"≤ {g['max']:g}{TIMES if g['of'] == 'ratio' else ''}"
    return f"{bound} {'**met**' if g['met'] else 'missed'}"


def table(data: dict[str, Any]) -> str:
    meta = data["meta"]
    load = (f"load average {meta['load_at_start'][0]:.1f} at start, "
            f"{meta.get('load_at_end', ['?'])[0]:.1f} at end")
    lines = [f"**{data['title']}** ({meta['started']}, {meta['cpus']} CPUs, {load})", "",
             "| figure | median | ratio | goal | n | round trip |", "|---|---|---|---|---|---|"]
    for row in data["figures"]:
        ratio = f"{row['ratio']:.2f}{TIMES}" if row.get("ratio") is not None else ""
        lines.append(f"| {row['label']} | {value(row)} | {ratio} | {goal(row)} | "
                     f"{len(row['samples'])} | {row.get('rtt', '')} |")
    lines += [f"\n- {note}" for note in data.get("notes", [])]
    return "\n".join(lines)


def main() -> int:
    paths = [Path(a) for a in sys.argv[1:]] or sorted(RESULTS.glob("*.json"))
    for path in paths:
        print(table(json.loads(path.read_text())))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
