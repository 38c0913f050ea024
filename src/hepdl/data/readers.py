"""Readers that take named arrays out of physics data files: NumPy, HDF5, Parquet/CSV, ROOT.

Each reader answers one question, ``read(path, keys) -> {key: array}``, and raises
:class:`~hepdl.errors.KeyNotFoundError` listing the keys that exist when one is missing.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hepdl.errors import DataError, KeyNotFoundError


def expand_paths(spec: str | Sequence[str]) -> list[Path]:
    """Expand a path, a glob or a list of them into existing files, in the order given.

    Raises
    ------
    DataError
        A path does not exist, or a glob matches nothing.
    """
    patterns = [spec] if isinstance(spec, str | Path) else list(spec)
    if not patterns:
        raise DataError("data.source.path", "no files given")
    files: list[Path] = []
    for pattern in patterns:
        pattern = str(Path(pattern).expanduser())
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise DataError(pattern, "no file matches this pattern")
            files.extend(Path(m) for m in matches)
        elif Path(pattern).is_file():
            files.append(Path(pattern))
        else:
            raise DataError(pattern, "no such file")
    return files


def _decode(array: np.ndarray) -> np.ndarray:
    """Byte strings (HDF5, ROOT) as str, so class names read the same from every format."""
    if array.dtype.kind == "S" or (array.dtype.kind == "O" and array.size and
                                   isinstance(array.flat[0], bytes)):
        return np.char.decode(array.astype("S"), "utf-8")
    return array


def read_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(str(path), f"not a readable .npz archive ({exc})") from None
    with archive:
        out = {}
        for key in keys:
            if key not in archive.files:
                raise KeyNotFoundError(str(path), key, archive.files, "array")
            out[key] = archive[key]
    return out


def open_hdf5(path: Path):
    """Open an HDF5 file for reading, turning h5py's errors into one DataError line."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc).split("(")[0].strip() or "unreadable"
        raise DataError(str(path), f"not a readable HDF5 file: {reason} (truncated or corrupt?)") \
            from None


def hdf5_datasets(handle) -> list[str]:
    """Every dataset path in an open HDF5 file, in visiting order."""
    import h5py

    names: list[str] = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                      else None)
    return names


def hdf5_dataset(handle, path: Path, key: str):
    """The dataset ``key`` of an open HDF5 file.

    Raises
    ------
    KeyNotFoundError
        ``key`` is not a dataset of the file; the message lists those there, nearest first.
    DataError
        ``key`` is a group of hits (``hepdl data hits``), which the ``lcd`` source reads.
    """
    import h5py

    from hepdl.data.hits import is_hits_group

    node = handle.get(key)
    if isinstance(node, h5py.Group) and is_hits_group(node):
        raise DataError(f"{path}:{key}", "is stored as hits (zero-suppressed cells, hepdl data "
                                         "hits): read such files with source kind: lcd")
    if not isinstance(node, h5py.Dataset):
        raise KeyNotFoundError(str(path), key, hdf5_datasets(handle), "dataset")
    return node


def read_hdf5(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    with open_hdf5(path) as handle:
        out = {}
        for key in keys:
            node = hdf5_dataset(handle, path, key)
            try:
                out[key] = _decode(node[()])
            except OSError as exc:
                raise DataError(f"{path}:{key}", f"cannot be read ({exc}); truncated file?") \
                    from None
    return out


def read_table(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns of a Parquet (pyarrow) or CSV (pandas) table, chosen by the file's suffix."""
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
            missing = [k for k in keys if k not in schema.names]
            if missing:
                raise KeyNotFoundError(str(path), missing[0], schema.names, "column")
            table = pq.read_table(path, columns=list(dict.fromkeys(keys)))
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise DataError(str(path), f"not a readable Parquet file ({exc})") from None
        return {k: table.column(k).to_numpy() for k in keys}
    if suffix in {".csv", ".txt"} or path.name.endswith(".csv.gz"):
        import pandas as pd

        try:
            header = pd.read_csv(path, nrows=0).columns.tolist()
        except (OSError, ValueError) as exc:
            raise DataError(str(path), f"not a readable CSV file ({exc})") from None
        missing = [k for k in keys if k not in header]
        if missing:
            raise KeyNotFoundError(str(path), missing[0], header, "column")
        frame = pd.read_csv(path, usecols=list(dict.fromkeys(keys)))
        return {k: frame[k].to_numpy() for k in keys}
    raise DataError(str(path), "a table must be .parquet or .csv")


TREE_CLASSES = ("TTree", "ROOT::RNTuple")


def read_root(path: Path, keys: Sequence[str], tree: str) -> dict[str, np.ndarray]:
    """Flat branches of a ROOT TTree (or RNTuple: uproot reads both the same way)."""
    import uproot

    try:
        handle = uproot.open(path)
    except Exception as exc:  # uproot raises many types for a corrupt file
        raise DataError(str(path), f"not a readable ROOT file ({type(exc).__name__})") from None
    with handle:
        if tree not in handle:
            trees = [k.split(";")[0] for k, c in handle.classnames().items()
                     if c in TREE_CLASSES]
            raise KeyNotFoundError(str(path), tree, trees, "tree")
        ttree = handle[tree]
        branches = list(ttree.keys())
        missing = [k for k in keys if k not in branches]
        if missing:
            raise KeyNotFoundError(f"{path}:{tree}", missing[0], branches, "branch")
        arrays = ttree.arrays(list(dict.fromkeys(keys)), library="np")
    for key, array in arrays.items():
        if array.dtype == object:
            raise DataError(f"{path}:{tree}:{key}", "is a jagged branch; expected a flat branch")
    return {k: _decode(arrays[k]) for k in keys}


def read_arrays(kind: str, path: Path, keys: Sequence[str], tree: str | None = None):
    """Read ``keys`` from one file of a source of the given kind."""
    if kind == "npz":
        return read_npz(path, keys)
    if kind == "hdf5":
        return read_hdf5(path, keys)
    if kind == "table":
        return read_table(path, keys)
    if kind == "root":
        return read_root(path, keys, tree)
    raise DataError(str(path), f"unknown source kind {kind!r}")
