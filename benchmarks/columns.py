"""Ntuples into memory: peak memory of reading a Parquet table or a ROOT tree into its splits,
whole and then cut (the way NumPy and CSV files, and any source with ``select``, are read)
against block by block (how Parquet and ROOT files are read now, in memory or streamed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import json, re, sys, time
from pathlib import Path
import pandas, pyarrow.dataset, pyarrow.parquet, uproot  # the libraries' own memory is not the
# data's (reading a Parquet column imports pandas and pyarrow.dataset)
from hepdl.config import DataConfig
from hepdl.data.dataset import load_dataset, load_splits, split_indices

data = DataConfig.model_validate(json.loads(sys.argv[1]))
def peak():
    return int(re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1))
Path('/proc/self/clear_refs').write_text('5')  # the high-water mark from here
base, start = peak(), time.perf_counter()
if sys.argv[2] == "whole":
    dataset = load_dataset(data)
    splits = {name: dataset.subset(index) for name, index in split_indices(
        len(dataset), data.split, 1).items()}
    del dataset
else:
    splits = load_splits(data, "classification", 1)
seconds = time.perf_counter() - start
held = sum(v.nbytes for s in splits.values() for v in s.inputs.values())
print(json.dumps({"peak_mb": (peak() - base) / 1024, "held_mb": held / 2**20,
                  "rate": sum(len(s) for s in splits.values()) / seconds}))
"""


def _write(tmp: Path, events: int, columns: int, group: int) -> dict[str, Path]:
    """The same events as a Parquet table (row groups of ``group``) and a ROOT tree (clusters
    of ``group``): ``columns`` float32 features and an int32 label."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import uproot

    rng = np.random.default_rng(1)
    arrays = {f"x{i}": rng.normal(size=events).astype(np.float32) for i in range(columns)}
    arrays["label"] = (rng.random(events) < 0.5).astype(np.int32)
    pq.write_table(pa.table(arrays), tmp / "ntuple.parquet", row_group_size=group)
    # pyarrow's and pandas' default: row groups of up to 1,048,576 rows, one for this file
    pq.write_table(pa.table(arrays), tmp / "one_group.parquet")
    with uproot.recreate(tmp / "ntuple.root") as f:
        f.mktree("events", {k: v.dtype for k, v in arrays.items()})
        for lo in range(0, events, group):
            f["events"].extend({k: v[lo:lo + group] for k, v in arrays.items()})
    return {"Parquet": tmp / "ntuple.parquet", "Parquet, one row group": tmp / "one_group.parquet",
            "ROOT": tmp / "ntuple.root"}


def read_memory(events: int = 1_000_000, columns: int = 24, group: int = 100_000) -> list[dict]:
    """Each read in a fresh process; its peak resident memory above the libraries' own, and
    its rate. Row groups (clusters) of ``group`` events, and a Parquet file of one row group as
    pyarrow and pandas write it by default."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = _write(Path(tmp), events, columns, group)
        for name, path in files.items():
            kind = "root" if path.suffix == ".root" else "table"
            source = {"kind": kind, "path": str(path), "label": "label",
                      "inputs": {"x": [f"x{i}" for i in range(columns)]},
                      **({"tree": "events"} if kind == "root" else {})}
            for mode in ("whole", "block"):
                done = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"source": source}),
                                       mode], check=True, capture_output=True, text=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                how = "whole, then cut" if mode == "whole" else "block by block"
                rows.append({
                    "benchmark": f"{name} into memory, {events:,} events x {columns} columns "
                                 f"({result['held_mb']:.0f} MB of inputs), {how}",
                    "workers": 1, "events_per_second": result["rate"],
                    "peak_mb": result["peak_mb"],
                    "goal": f"peak memory {result['peak_mb']:,.0f} MB"})
    return rows
