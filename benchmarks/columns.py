"""Ntuples into memory: peak memory of reading a Parquet table or a ROOT tree into its splits,
whole and then cut (the way NumPy and CSV files, and any source with ``select``, are read)
against block by block (how Parquet and ROOT files are read now, in memory or streamed); and of
rewriting the same events from CSV as Parquet (``hepdl data convert``) against reading the CSV."""

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
if sys.argv[2] == "convert":
    from hepdl.data.convert import convert
    splits = {}
    rows = convert(data.source.path, data.source.path + ".parquet").events
elif sys.argv[2] == "whole":
    dataset = load_dataset(data)
    splits = {name: dataset.subset(index) for name, index in split_indices(
        len(dataset), data.split, 1).items()}
    del dataset
else:
    splits = load_splits(data, "classification", 1)
seconds = time.perf_counter() - start
held = sum(v.nbytes for s in splits.values() for v in s.inputs.values())
rows = rows if sys.argv[2] == "convert" else sum(len(s) for s in splits.values())
print(json.dumps({"peak_mb": (peak() - base) / 1024, "held_mb": held / 2**20,
                  "rate": rows / seconds}))
"""


def _write(tmp: Path, events: int, columns: int, group: int) -> dict[str, Path]:
    """The same events as a Parquet table (row groups of ``group``) and a ROOT tree (clusters
    of ``group``): ``columns`` float32 features and an int32 label."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
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
    pacsv.write_csv(pa.table(arrays), tmp / "ntuple.csv")
    with open(tmp / "ntuple.csv", "rb") as one, open(tmp / "three.csv", "wb") as three:
        header = one.readline()
        body = one.read()
        three.write(header + body * 3)  # three times the events: the conversion's memory stays
    return {"Parquet": tmp / "ntuple.parquet", "Parquet, one row group": tmp / "one_group.parquet",
            "ROOT": tmp / "ntuple.root", "CSV": tmp / "ntuple.csv",
            "CSV, three times the events": tmp / "three.csv"}


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
            modes = (("convert",) if path.name == "three.csv" else ("whole", "convert")
                     if path.suffix == ".csv" else ("whole", "block"))
            for mode in modes:
                done = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"source": source}),
                                       mode], check=True, capture_output=True, text=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                how = {"whole": "into memory whole, then cut",
                       "block": "into memory block by block",
                       "convert": "rewritten as Parquet (hepdl data convert)"}[mode]
                held = "" if mode == "convert" else f" ({result['held_mb']:.0f} MB of inputs)"
                rows.append({
                    "benchmark": f"{name}, {events * (3 if 'three' in name else 1):,} events x "
                                 f"{columns} columns, {how}{held}",
                    "workers": 1, "events_per_second": result["rate"],
                    "peak_mb": result["peak_mb"],
                    "goal": f"peak memory {result['peak_mb']:,.0f} MB"})
    return rows
