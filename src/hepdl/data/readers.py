"""Readers that take named arrays out of physics data files: NumPy, HDF5, Parquet/CSV, ROOT.

Each reader answers one question, ``read(path, keys) -> {key: array}``, and raises
:class:`~hepdl.errors.KeyNotFoundError` listing the keys that exist when one is missing.
"""

from __future__ import annotations

import glob
import re
import threading
import weakref
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


TREE_CLASSES = ("TTree", "ROOT::RNTuple")

PARQUET_SUFFIXES = (".parquet", ".pq")

CSV_SUFFIXES = (".csv", ".txt", ".csv.gz", ".txt.gz", ".csv.bz2")
"""CSV files by the end of their name; pyarrow decompresses .gz and .bz2 as it reads."""

_BATCH_READER = threading.local()
"""The ParquetRows whose row group is read batch by batch on this thread (a weak reference)."""


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def is_csv(path: Path) -> bool:
    return path.name.lower().endswith(CSV_SUFFIXES)


def one_line(exc: Exception) -> str:
    """A library's error message on one line (pyarrow's span several)."""
    return " ".join(str(exc).split())


def read_table(path: Path, keys: Sequence[str], columns: Sequence[str] | None = None,
               floats: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Columns of a Parquet or CSV table (both with pyarrow), chosen by the file's suffix;
    ``columns`` names the columns of a CSV file without a header row, ``floats`` the columns
    of a CSV file parsed as float32 (:func:`read_csv`)."""
    if is_parquet(path):
        if columns is not None:
            raise DataError(str(path), "data.source.columns names the columns of a CSV file "
                                       "without a header row; a Parquet file names its own")
        rows = ParquetRows(path)
        try:
            rows.require(keys)
            return rows.read(keys, 0, rows.n_rows)
        finally:
            rows.close()
    if is_csv(path):
        return read_csv(path, keys, columns, floats)
    raise DataError(str(path), f"a table must be {', '.join(PARQUET_SUFFIXES + CSV_SUFFIXES)}")


CSV_BLOCK_BYTES = 2 * 2**20
"""Bytes of CSV text parsed at a time when a file is streamed (``hepdl data convert``,
``inspect``); pyarrow infers each column's type from the first block. Its streaming reader
parses dozens of blocks ahead of the one handed out (pyarrow 26), so the block sets the memory
taken, whatever the file's size (benchmarks/columns.py)."""

CSV_NULLS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
"""The cells read as missing (NaN in a number column, None in a text one): pandas' list, which
is pyarrow's default and ``None`` and ``<NA>``."""


def csv_options(columns: Sequence[str] | None = None, keys: Sequence[str] | None = None,
                block_bytes: int | None = None, floats: Sequence[str] = (),
                texts: Sequence[str] = ()):
    """pyarrow's read and convert options for a CSV file: ``columns`` names a file without a
    header row, ``keys`` are the columns read (None: all), ``floats`` those parsed as float32
    and ``texts`` as text (the others' types are inferred), missing cells as
    :data:`CSV_NULLS`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(column_names=columns, **({"block_size": block_bytes}
                                                      if block_bytes else {}))
    types = {key: pa.string() for key in texts} | {key: pa.float32() for key in floats}
    convert = pacsv.ConvertOptions(include_columns=list(keys or []), null_values=CSV_NULLS,
                                   strings_can_be_null=True, column_types=types)
    return read, convert


def csv_names(path: Path, columns: Sequence[str] | None = None,
              option: str = "data.source.columns", keys: Sequence[str] | None = None,
              block_bytes: int | None = None) -> list[str]:
    """The column names of a CSV file: its first row, or ``columns`` for a file without a header
    row; ``option`` is where ``columns`` comes from, ``keys`` the columns to be read (None: all),
    ``block_bytes`` the block the file will be parsed in (the first one is parsed here).

    A first row of numbers is no header (the UCI SUSY and HIGGS files have none), unless it
    holds every key asked for or is pandas' default header ``0,1,...``.

    Raises
    ------
    DataError
        The file is not readable as CSV; its first row is numbers and ``columns`` was not given;
        ``columns`` repeats a name, names more or fewer columns than the file has, or is given
        for a file with a header row.
    """
    import pyarrow.csv as pacsv

    try:  # the first block only: pyarrow's streaming reader infers the schema from it
        read, _ = csv_options(block_bytes=block_bytes)
        read.autogenerate_column_names = columns is not None
        with pacsv.open_csv(path, read_options=read) as reader:
            names = reader.schema.names
    except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise DataError(str(path), f"not a readable CSV file ({one_line(exc)})") from None
    if columns is None:
        twice = [name for name in dict.fromkeys(names) if names.count(name) > 1]
        if twice:
            raise DataError(str(path), f"names the column {twice[0]!r} twice in its header row")
        pandas_header = names == [str(i) for i in range(len(names))]
        if _numbers(names) and not pandas_header and (keys is None or set(keys) - set(names)):
            raise DataError(str(path), f"has no header row (its first row is "
                                       f"{', '.join(names[:3])}, ...): name its columns in "
                                       f"order with {option}")
        return names
    if len(set(columns)) != len(columns):
        raise DataError(option, f"names a column twice: {columns}")
    if len(columns) != len(names):
        raise DataError(str(path), f"has {len(names)} columns; {option} names {len(columns)}")
    first, second = _first_rows(path)
    header = [i for i, (a, b) in enumerate(zip(first, second, strict=False))
              if a.strip() not in CSV_NULLS and not _numbers([a]) and _numbers([b])]
    if header:
        raise DataError(str(path), f"has a header row ({', '.join(first[:3])}, ...): drop "
                                   f"{option}, which names the columns of a file without one")
    return list(columns)


def csv_error(exc: Exception, names: Sequence[str]) -> str:
    """pyarrow's CSV error on one line, the column named (pyarrow numbers it in the file)."""
    return re.sub(r"column #(\d+)", lambda m: f"column {names[int(m[1])]!r}"
                  if int(m[1]) < len(names) else m[0], one_line(exc))


def _numbers(names: Sequence[str]) -> bool:
    """Whether every name of a header parses as a number: the first row of a file without one."""
    try:
        [float(name) for name in names]
    except ValueError:
        return False
    return True


def _first_rows(path: Path) -> tuple[list[str], list[str]]:
    """The first two rows of a CSV file as text (a .gz or .bz2 one decompressed)."""
    import csv
    import io

    import pyarrow as pa

    with pa.input_stream(str(path), compression="detect") as raw, \
            io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as text:
        rows = csv.reader(text)
        first, second = next(rows, []), next(rows, [])
    return first, second


def read_csv(path: Path, keys: Sequence[str], columns: Sequence[str] | None = None,
             floats: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Columns ``keys`` of a CSV file (compressed ones by suffix: ``.csv.gz``), read whole with
    pyarrow's multithreaded parser; missing cells (:data:`CSV_NULLS`) are NaN in number columns
    and None in text ones. The columns ``floats`` (a model's inputs) are parsed as float32, half
    the memory of the float64 a number column is read as otherwise.

    Raises
    ------
    KeyNotFoundError
        A key is not a column; the message lists those there, nearest first.
    DataError
        The header is not what ``columns`` says (:func:`csv_names`), a row cannot be parsed, or
        the file has no events.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = csv_names(path, columns, keys=keys)
    missing = [k for k in keys if k not in names]
    if missing:
        raise KeyNotFoundError(str(path), missing[0], names, "column")
    keys = list(dict.fromkeys(keys))
    floats = [k for k in keys if k in set(floats)]

    def read(floats: list[str]):
        # every type given: while pyarrow infers a column's type it holds the whole file's
        # text until the end (benchmarks/columns.py: half the peak memory with every type given)
        options = csv_options(columns, keys, floats=floats,
                              texts=[k for k in keys if k not in floats])
        return pacsv.read_csv(path, read_options=options[0], convert_options=options[1])

    not_float = None  # pyarrow's error for an input column that is no float32
    try:
        try:
            table = read(floats)
        except ValueError as exc:
            if not floats or "conversion error to float" not in str(exc):
                raise
            table, not_float = read([]), csv_error(exc, names)  # a column of true/false
    except (OSError, ValueError) as exc:
        raise DataError(str(path), f"cannot be read as CSV ({csv_error(exc, names)})") \
            from None
    if table.num_rows == 0:
        raise DataError(str(path), "has no events (a header row only)")
    out = {}
    for key in keys:  # each column's Arrow buffers are freed once it is a NumPy array
        column = table.column(key)
        typed = column if column.type == pa.float32() else _typed(column)
        if key in floats and pa.types.is_string(typed.type):
            raise DataError(str(path), f"cannot be read as CSV ({not_float})")
        out[key] = typed.to_numpy()
        table = table.drop_columns([key])
    return out


def _typed(column):
    """A CSV column read as text, as the type its cells all have (spaces around them aside):
    int64, float64 or bool (in that order, as pyarrow would infer it), else the text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(column)
    for type_ in (pa.int64(), pa.float64(), pa.bool_()):
        try:
            return pc.cast(trimmed, type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return column


class ParquetRows:
    """An open Parquet file read by rows, for streaming.

    :meth:`read` decodes whole row groups where a range covers them, and the rows of a large
    row group batch by batch, batches of about ``batch_bytes`` (pyarrow and pandas write row
    groups of up to 1,048,576 rows by default, one for most files). A group is large when its
    decoded size (of the columns read) passes ``large_bytes`` and what a batch reader holds
    itself, about ``column_bytes`` per column. A read that goes on where the last one ended
    continues its batches, so a pass over the file decodes every batch once; a read elsewhere in
    a row group decodes it from the start (shuffled blocks of a large row group). One batch
    reader is alive per thread: starting one ends any other file's.
    """

    large_bytes = 32 * 2**20
    batch_bytes = 8 * 2**20
    column_bytes = 2 * 2**20  # measured: 1.5-2 MiB per column with a 256 KiB read buffer
    min_batch_rows = 1024

    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        self.path = path
        try:
            self.file = pq.ParquetFile(path, buffer_size=2**18, pre_buffer=False)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            raise DataError(str(path), f"not a readable Parquet file ({one_line(exc)})") \
                from None
        meta = self.file.metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.names = list(self.file.schema_arrow.names)
        self._cursor = None  # (group, keys), where the pending batch starts, batches, pending

    @property
    def n_rows(self) -> int:
        return int(self.starts[-1])

    def chunk_edges(self, keys: Sequence[str]) -> np.ndarray:
        """Where each row group, and each batch of a large one, begins; and the row count: the
        pieces blocks are made of (for the columns ``keys``)."""
        pieces = [np.arange(a, b, self._batch_rows(group, keys) or max(b - a, 1))
                  for group, (a, b) in enumerate(zip(self.starts[:-1], self.starts[1:],
                                                     strict=True))]
        return np.unique(np.concatenate([*pieces, [self.n_rows]])).astype(np.int64)

    def _batch_rows(self, group: int, keys: Sequence[str]) -> int | None:
        """Rows of a batch of a large row group (None: the group is read whole)."""
        rows, keys = int(self.starts[group + 1] - self.starts[group]), list(dict.fromkeys(keys))
        size = sum(self._decoded_bytes(group, key, rows) for key in keys)
        if size <= max(self.large_bytes, self.batch_bytes + self.column_bytes * len(keys)):
            return None
        return max(self.min_batch_rows, int(rows * self.batch_bytes / size))

    def _decoded_bytes(self, group: int, key: str, rows: int) -> int:
        """A column's size in memory: fixed-width types by their width (Parquet's encoded size
        is far smaller for rounded or few-valued columns), others as encoded."""
        try:
            return rows * self.file.schema_arrow.field(key).type.bit_width // 8
        except ValueError:  # not fixed-width
            meta = self.file.metadata
            leaf = next((i for i in range(meta.num_columns)
                         if meta.schema.column(i).path == key), None)
            return 0 if leaf is None else meta.row_group(group).column(leaf).total_uncompressed_size

    def require(self, keys: Sequence[str]) -> None:
        missing = [k for k in keys if k not in self.names]
        if missing:
            raise KeyNotFoundError(str(self.path), missing[0], self.names, "column")

    def describe(self, keys: Sequence[str]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Each column's shape of one event (() for a scalar) and NumPy dtype (object for what
        is not a number: lists, strings), from the schema."""
        out = {}
        for key in keys:
            try:
                out[key] = (), np.dtype(self.file.schema_arrow.field(key).type.to_pandas_dtype())
            except (NotImplementedError, TypeError):
                out[key] = (), np.dtype(object)
        return out

    def read(self, keys: Sequence[str], lo: int, hi: int) -> dict[str, np.ndarray]:
        """Rows ``lo:hi`` of the columns ``keys`` (decoded on this thread: the training thread
        keeps the cores)."""
        import pyarrow as pa

        keys = list(dict.fromkeys(keys))
        if hi <= lo:
            return {k: np.empty(0, dtype=dtype) for k, (_, dtype) in self.describe(keys).items()}
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        last = int(np.searchsorted(self.starts, hi, side="left"))
        parts = []
        try:
            for group in range(first, last):
                a, b = max(lo, int(self.starts[group])), min(hi, int(self.starts[group + 1]))
                if b <= a:
                    continue
                if b - a == self.starts[group + 1] - self.starts[group]:
                    parts.append(self.file.read_row_groups([group], columns=keys,
                                                           use_threads=False))
                else:
                    parts.append(self._rows_of_group(group, keys, a, b))
        except (OSError, ValueError) as exc:
            raise DataError(str(self.path), f"cannot be read ({one_line(exc)}); truncated "
                                            "file?") from None
        table = pa.concat_tables(parts)
        return {k: table.column(k).to_numpy() for k in keys}

    def _rows_of_group(self, group: int, keys: list[str], a: int, b: int):
        """Rows ``a:b`` of one row group, from its batches: those of the last read if it ended
        at or before ``a`` in this group, else from the group's first batch."""
        import pyarrow as pa

        cursor = self._cursor
        if cursor is None or cursor[0] != (group, tuple(keys)) or cursor[1] > a:
            self._cursor = None  # one batch reader at a time: the old one is freed first
            other = getattr(_BATCH_READER, "rows", None)
            if other is not None and other() not in (None, self):
                other()._cursor = None  # the thread's reader of another file
            _BATCH_READER.rows = weakref.ref(self)
            batches = self.file.iter_batches(batch_size=self._batch_rows(group, keys) or 65_536,
                                             row_groups=[group], columns=keys,
                                             use_threads=False)  # as chunk_edges cut it
            cursor = [(group, tuple(keys)), int(self.starts[group]), batches, None]
        _, position, batches, pending = cursor
        taken = []
        while position < b:
            if pending is None:
                pending = next(batches)
            end = position + pending.num_rows
            if end > a:
                taken.append(pending.slice(max(a - position, 0), min(b, end) - max(a, position)))
            if end > b:
                break  # the rest of this batch is the next read's
            position, pending = end, None
        done = pending is None and position == self.starts[group + 1]
        self._cursor = None if done else [cursor[0], position, batches, pending]
        return pa.Table.from_batches(taken)

    def close(self) -> None:
        self._cursor = None
        self.file.close()


class RootRows:
    """A flat ROOT TTree (or RNTuple) read by entries with uproot: :meth:`read` takes entries
    ``lo:hi`` of some branches."""

    def __init__(self, path: Path, tree: str):
        import uproot

        self.path, self.where = path, f"{path}:{tree}"
        try:  # each entry is read once: uproot's cache of arrays would only hold memory
            self.file = uproot.open(path, array_cache=None)
        except Exception as exc:  # uproot raises many types for a corrupt file
            raise DataError(str(path), f"not a readable ROOT file ({type(exc).__name__})") \
                from None
        if tree not in self.file:
            trees = [k.split(";")[0] for k, c in self.file.classnames().items()
                     if c in TREE_CLASSES]
            self.file.close()
            raise KeyNotFoundError(str(path), tree, trees, "tree")
        self.tree = self.file[tree]
        self.names = list(self.tree.keys())

    @property
    def n_rows(self) -> int:
        return int(self.tree.num_entries)

    def chunk_edges(self, keys: Sequence[str]) -> np.ndarray:
        """Where the branches ``keys`` all begin a basket (an RNTuple: its clusters), and the
        entry count: uproot decodes whole baskets and clusters."""
        try:
            if hasattr(self.tree, "common_entry_offsets"):
                edges = self.tree.common_entry_offsets(filter_name=list(keys))
            else:
                edges = np.cumsum([0, *(c.num_entries for c in self.tree.cluster_summaries)])
        except ValueError as exc:  # baskets that do not add up to the tree's entries
            raise DataError(self.where, f"cannot be read ({one_line(exc)})") from None
        edges = np.unique(np.asarray(edges, dtype=np.int64))
        if edges[0] != 0 or edges[-1] != self.n_rows:
            raise DataError(self.where, f"its clusters cover entries {edges[0]}:{edges[-1]} "
                                        f"of {self.n_rows}; the file is damaged")
        return edges

    def require(self, keys: Sequence[str]) -> None:
        missing = [k for k in keys if k not in self.names]
        if missing:
            raise KeyNotFoundError(self.where, missing[0], self.names, "branch")

    def describe(self, keys: Sequence[str]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Each branch's shape of one entry and dtype, from the first entry, read once for all
        (object: jagged)."""
        values = self.read(keys, 0, min(1, self.n_rows))
        return {key: (tuple(value.shape[1:]), value.dtype) for key, value in values.items()}

    def read(self, keys: Sequence[str], lo: int, hi: int) -> dict[str, np.ndarray]:
        try:
            arrays = self.tree.arrays(list(dict.fromkeys(keys)), entry_start=lo, entry_stop=hi,
                                      library="np")
        except MemoryError:
            raise
        except Exception as exc:  # uproot's decompression and deserialization errors
            raise DataError(self.where, f"cannot be read ({type(exc).__name__}: "
                                        f"{one_line(exc)}); truncated file?") from None
        return {k: arrays[k] for k in keys}

    def close(self) -> None:
        self.file.close()


def read_root(path: Path, keys: Sequence[str], tree: str) -> dict[str, np.ndarray]:
    """Flat branches of a ROOT TTree (or RNTuple: uproot reads both the same way)."""
    rows = RootRows(path, tree)
    try:
        rows.require(keys)
        arrays = rows.read(keys, 0, rows.n_rows)
    finally:
        rows.close()
    for key, array in arrays.items():
        if array.dtype == object:
            raise DataError(f"{path}:{tree}:{key}", "is a jagged branch; expected a flat branch")
    return {k: _decode(arrays[k]) for k in keys}


def read_arrays(source, path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``keys`` from one file of a file source (a :class:`~hepdl.config.FileSource`)."""
    if source.kind == "npz":
        return read_npz(path, keys)
    if source.kind == "hdf5":
        return read_hdf5(path, keys)
    if source.kind == "table":  # a CSV's input columns parsed as float32, what the model takes,
        # unless an observer, a selection or the label reads them too (those keep their precision)
        others = {*source.observers.values(), *source.select, source.label}
        return read_table(path, keys, source.columns,
                          floats=[k for k in source.input_keys if k not in others])
    if source.kind == "root":
        return read_root(path, keys, source.tree)
    raise DataError(str(path), f"unknown source kind {source.kind!r}")
