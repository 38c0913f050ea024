"""Rewrite a file that hepdl reads whole into one that streams (``hepdl data convert``).

A CSV table becomes Parquet with row groups of ``row_group_rows`` events, read block by block
with pyarrow's streaming CSV reader, so a file larger than memory converts in bounded memory:
about 160 MB for 24 columns in row groups of 100,000 events, whatever the number of events
(``.csv.gz`` is decompressed as it is read). A NumPy ``.npz`` archive becomes HDF5 with its
arrays chunked along the event axis; NumPy reads an archive member whole, so the largest array
must fit in memory once. Both outputs stream with ``data.in_memory: false``, and both are written
under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hepdl.data.readers import (
    CSV_BLOCK_BYTES,
    PARQUET_SUFFIXES,
    csv_error,
    csv_names,
    csv_options,
    is_csv,
    is_parquet,
)
from hepdl.errors import DataError
from hepdl.runs import temporary_path

HDF5_SUFFIXES = (".h5", ".hdf5")

CHUNK_BYTES = 2**20
"""Target size of one HDF5 chunk: the unit a streaming read decodes."""


@dataclass(frozen=True)
class Converted:
    """What :func:`convert` wrote: the events, the keys (columns or arrays) and the pieces a
    streaming read takes one at a time (Parquet row groups, HDF5 chunks of the first array)."""

    path: Path
    events: int
    keys: list[str]
    pieces: int

    def summary(self) -> str:
        table = is_parquet(self.path)
        return (f"wrote {self.events} events of {len(self.keys)} "
                f"{'columns' if table else 'arrays'} to {self.path} ({self.pieces} "
                f"{'row groups' if table else 'chunks'}, {self.path.stat().st_size / 2**20:.1f} "
                "MB)")


def convert(source: str | Path, out: str | Path, *, columns: Sequence[str] | None = None,
            row_group_rows: int = 100_000) -> Converted:
    """Rewrite ``source`` as ``out``: CSV (``.csv``, ``.csv.gz`` ...) to Parquet, ``.npz`` to HDF5.

    Parameters
    ----------
    source, out : path
        The file to read and the file to write; the pair of suffixes picks the conversion.
    columns : list of str, optional
        Names of the columns of a CSV file without a header row, in order.
    row_group_rows : int
        Events per Parquet row group: the unit of streaming and of shuffling between epochs.

    Raises
    ------
    DataError
        An unknown pair of suffixes, an unreadable input, or a CSV value that does not parse as
        the type its column has in the first block.
    """
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise DataError(str(source), "no such file")
    if row_group_rows < 1:
        raise DataError("--row-group-rows", f"must be at least 1, got {row_group_rows}")
    if not out.parent.is_dir():
        raise DataError(str(out.parent), "no such directory (for the output file)")
    if is_csv(source) and is_parquet(out):
        return _csv_to_parquet(source, out, columns, row_group_rows)
    if source.suffix.lower() == ".npz" and out.suffix.lower() in HDF5_SUFFIXES:
        if columns is not None:
            raise DataError("--columns", "names the columns of a CSV file without a header row; "
                                         "an .npz archive names its arrays")
        return _npz_to_hdf5(source, out)
    raise DataError(f"{source} -> {out}", "converts a CSV file (.csv, .csv.gz ...) to Parquet "
                                          f"({', '.join(PARQUET_SUFFIXES)}) or an .npz archive "
                                          f"to HDF5 ({', '.join(HDF5_SUFFIXES)})")


def _csv_to_parquet(source: Path, out: Path, columns: Sequence[str] | None,
                    row_group_rows: int) -> Converted:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    # a header, or as many names; the first block parsed as the conversion will parse it
    names = csv_names(source, columns, "--columns", block_bytes=CSV_BLOCK_BYTES)
    read, convert_options = csv_options(columns, block_bytes=CSV_BLOCK_BYTES)
    tmp = temporary_path(out)
    events = groups = 0
    try:
        with _failing_as(source, names), pacsv.open_csv(
                source, read_options=read, convert_options=convert_options) as reader, \
                pq.ParquetWriter(tmp, reader.schema) as writer:
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                pending.append(batch)
                rows += batch.num_rows
                while rows >= row_group_rows:  # whole row groups, the rest waits for more
                    table = pa.Table.from_batches(pending, schema=reader.schema)
                    writer.write_table(table.slice(0, row_group_rows),
                                       row_group_size=row_group_rows)
                    rest = table.slice(row_group_rows)
                    pending, rows = rest.to_batches(), rest.num_rows
                    events, groups = events + row_group_rows, groups + 1
            if rows:
                writer.write_table(pa.Table.from_batches(pending, schema=reader.schema),
                                   row_group_size=row_group_rows)
                events, groups = events + rows, groups + 1
        if events == 0:
            raise DataError(str(source), "has no events (a header row only)")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Converted(out, events, names, groups)


@contextlib.contextmanager
def _failing_as(source: Path, names: list[str]):
    """pyarrow's parse errors as one line, naming the column (pyarrow numbers it)."""
    try:
        yield
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        message = csv_error(exc, names)
        hint = (f"; the type of each column is inferred from the first "
                f"{CSV_BLOCK_BYTES / 2**20:g} MiB" if "conversion error" in message else "")
        raise DataError(str(source), f"cannot be converted ({message}){hint}") from None


def _npz_to_hdf5(source: Path, out: Path) -> Converted:
    import h5py

    try:
        archive = np.load(source, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(str(source), f"not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy file named .npz
        raise DataError(str(source), "is a single NumPy array, not an .npz archive of named "
                                     "arrays")
    tmp = temporary_path(out)
    pieces = None
    events = 0
    try:
        with archive, h5py.File(tmp, "w") as handle:
            for key in archive.files:
                try:
                    value = archive[key]
                except ValueError as exc:  # object arrays need pickle, which is never loaded
                    raise DataError(f"{source}:{key}", f"cannot be read ({exc})") from None
                if value.dtype.kind == "U":  # HDF5 holds bytes; hepdl decodes them on reading
                    value = np.char.encode(value, "utf-8")
                if value.ndim == 0:
                    handle.create_dataset(key, data=value)
                    continue
                event_bytes = max(value[:1].nbytes, 1)
                chunk = (max(1, min(len(value), CHUNK_BYTES // event_bytes)), *value.shape[1:])
                handle.create_dataset(key, data=value, chunks=chunk if len(value) else None,
                                      compression="gzip", compression_opts=4, shuffle=True)
                if pieces is None:
                    events, pieces = len(value), -(-len(value) // chunk[0])
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Converted(out, events, list(archive.files), pieces or 0)
