"""Run the benchmarks side by side and print a table; ``--json FILE`` writes the results.

    python -m benchmarks [--only generation,streaming,...] [--json results.json]

The rate column is events/s (samples/s for training), or trials/hour for the scan benchmark.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import calo, columns, health, profile, scan, sparse, training
from benchmarks.machine import machine_info

BENCHMARKS = {"generation": calo.generation, "streaming": calo.streaming,
              "scan": scan.throughput, "health": health.overhead, "training": training.throughput,
              "sparse": sparse.throughput, "memory": calo.peak_memory,
              "columns": columns.read_memory, "profile": profile.profiles}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", type=Path, help="write the results and machine info here")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")

    from rich.console import Console
    from rich.table import Table

    info = machine_info()
    rows = [row for name in chosen for row in BENCHMARKS[name]()]
    table = Table(title=f"hepdl benchmarks: {info['cores']} cores, torch {info['torch']}, "
                        f"{info['torch_threads']} threads")
    for column in ("benchmark", "workers", "rate", "wait", "goal"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for row in rows:
        wait = row.get("wait_fraction")
        rate = row["events_per_second"]
        table.add_row(row["benchmark"], str(row["workers"]), "" if rate != rate else f"{rate:,.0f}",
                      "" if wait is None else f"{wait:.1%}", row.get("goal", ""))
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
