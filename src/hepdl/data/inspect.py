"""What a data file holds: each key, branch or column with its shape, dtype, range and NaN count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hepdl.data.hits import hits_shape, is_hits_group
from hepdl.data.readers import (
    CSV_BLOCK_BYTES,
    TREE_CLASSES,
    csv_error,
    csv_names,
    csv_options,
    hdf5_datasets,
    is_csv,
    is_parquet,
    one_line,
    open_hdf5,
    read_csv,
)
from hepdl.errors import DataError

CHUNK_BYTES = 64 * 2**20  # large datasets are summarized chunk by chunk, never read whole


@dataclass
class ArraySummary:
    name: str
    shape: tuple[int, ...]
    dtype: str
    minimum: float | None = None
    maximum: float | None = None
    nonfinite: int | None = None
    note: str = ""


class _Range:
    """Running min, max and NaN/Inf count over chunks."""

    def __init__(self):
        self.lo, self.hi, self.bad = np.inf, -np.inf, 0

    def add(self, values: np.ndarray) -> None:
        if values.dtype.kind not in "fiub" or values.size == 0:
            return
        values = values.astype(np.float64, copy=False)
        finite = np.isfinite(values)
        self.bad += int(values.size - finite.sum())
        if finite.any():
            self.lo = min(self.lo, float(values[finite].min()))
            self.hi = max(self.hi, float(values[finite].max()))

    def summary(self, name, shape, dtype, note="") -> ArraySummary:
        numeric = np.dtype(dtype).kind in "fiub" if dtype != "object" else False
        has = numeric and self.lo <= self.hi
        return ArraySummary(name, tuple(shape), str(dtype), self.lo if has else None,
                            self.hi if has else None, self.bad if numeric else None, note)


def _summarize(name: str, array: np.ndarray) -> ArraySummary:
    r = _Range()
    r.add(array)
    return r.summary(name, array.shape, array.dtype)


def _hits(name: str, group) -> ArraySummary:
    """A hits group as the input it stores: (N, *cells), its cells' range (empty cells are 0)."""
    shape = hits_shape(group)
    r = _Range()
    values = group["value"]
    step = max(1, CHUNK_BYTES // max(values.dtype.itemsize, 1))
    for start in range(0, values.shape[0], step):
        r.add(values[start:start + step])
    cells = int(np.prod(shape))
    if values.shape[0] < cells:  # some cells are empty: zero is in the range
        r.add(np.zeros(1, dtype=values.dtype))
    occupancy = values.shape[0] / max(cells, 1)
    return r.summary(name, shape, values.dtype,
                     f"hits (zero-suppressed), occupancy {occupancy:.2%}; source kind: lcd")


def _hdf5(path: Path) -> list[ArraySummary]:
    with open_hdf5(path) as handle:
        out = []
        groups: list[str] = []  # of hits, listed once each as the input they store
        handle.visititems(lambda name, obj: groups.append(name) if is_hits_group(obj) else None)
        for name in hdf5_datasets(handle):
            group = next((g for g in groups if name.startswith(g + "/")), None)
            if group is not None:
                if name == f"{group}/value":
                    out.append(_hits(group, handle[group]))
                continue
            ds = handle[name]
            r = _Range()
            note = f"chunks {ds.chunks}, {ds.compression}" if ds.chunks else ""
            if ds.shape == ():
                r.add(np.asarray(ds[()]))
            else:
                row_bytes = max(ds.dtype.itemsize * int(np.prod(ds.shape[1:])), 1)
                step = max(1, CHUNK_BYTES // row_bytes)
                try:
                    for start in range(0, ds.shape[0], step):
                        r.add(ds[start:start + step])
                except OSError as exc:
                    raise DataError(f"{path}:{name}", f"cannot be read ({exc}); truncated?") \
                        from None
            out.append(r.summary(name, ds.shape, ds.dtype, note))
    return out


def _root(path: Path) -> list[ArraySummary]:
    import uproot

    try:
        handle = uproot.open(path)
    except Exception as exc:
        raise DataError(str(path), f"not a readable ROOT file ({type(exc).__name__})") from None
    out = []
    with handle:
        for key, cls in handle.classnames().items():
            if cls not in TREE_CLASSES:
                continue
            tree = handle[key]
            for branch in tree.keys():  # noqa: SIM118  (iterating a TTree yields TBranch objects)
                values = tree[branch].array(library="np")
                name = f"{key.split(';')[0]}/{branch}"
                if values.dtype == object:
                    out.append(ArraySummary(name, values.shape, "jagged", note="variable length"))
                else:
                    out.append(_summarize(name, values))
    return out


def _columns(schema, batches) -> list[ArraySummary]:
    """Each column of a table's record batches, summarized batch by batch (the table is never
    held whole); dtypes as NumPy reads the schema's types (object: text, lists)."""
    ranges = {name: _Range() for name in schema.names}
    events = 0
    for batch in batches:
        events += batch.num_rows
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            ranges[name].add(column.to_numpy(zero_copy_only=False))
    out = []
    for field in schema:
        try:
            dtype = np.dtype(field.type.to_pandas_dtype())
        except (NotImplementedError, TypeError):
            dtype = np.dtype(object)
        out.append(ranges[field.name].summary(field.name, (events,), dtype))
    return out


def _parquet(path: Path) -> list[ArraySummary]:
    from hepdl.data.readers import ParquetRows

    rows = ParquetRows(path)
    try:
        return _columns(rows.file.schema_arrow, rows.file.iter_batches(batch_size=65_536))
    except (OSError, ValueError) as exc:
        raise DataError(str(path), f"cannot be read ({one_line(exc)}); truncated file?") \
            from None
    finally:
        rows.close()


def _csv(path: Path, columns: Sequence[str] | None) -> list[ArraySummary]:
    """A CSV file block by block, the types pyarrow infers from the first block; a column whose
    type changes later is read again whole, each column's type inferred from all of it."""
    import pyarrow.csv as pacsv

    names = csv_names(path, columns, "--columns", block_bytes=CSV_BLOCK_BYTES)
    read, convert = csv_options(columns, block_bytes=CSV_BLOCK_BYTES)
    try:
        with pacsv.open_csv(path, read_options=read, convert_options=convert) as reader:
            return _columns(reader.schema, reader)
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        if "conversion error" not in str(exc):
            raise DataError(str(path), f"cannot be read as CSV ({csv_error(exc, names)})") \
                from None
    return [_summarize(k, v) for k, v in read_csv(path, names, columns).items()]


def inspect_file(path: str | Path, columns: Sequence[str] | None = None) -> list[ArraySummary]:
    """Summaries of every array in an HDF5, NumPy, Parquet, CSV or ROOT file; ``columns`` names
    the columns of a CSV file without a header row.

    Raises
    ------
    DataError
        The file is missing, unreadable, or of an unknown kind.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "no such file")
    suffix = path.suffix.lower()
    if suffix in {".h5", ".hdf5", ".hdf"}:
        return _hdf5(path)
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return [_summarize(k, archive[k]) for k in archive.files]
        except (OSError, ValueError) as exc:
            raise DataError(str(path), f"not a readable .npz archive ({exc})") from None
    if suffix == ".npy":
        return [_summarize(path.stem, np.load(path, mmap_mode="r", allow_pickle=False))]
    if suffix == ".root":
        return _root(path)
    if is_csv(path):
        return _csv(path, columns)
    if is_parquet(path):
        return _parquet(path)
    raise DataError(str(path), f"unknown file type {suffix!r}; expected .h5, .npz, .npy, "
                               ".parquet, .csv (.csv.gz) or .root")
