"""Data larger than memory: events read chunk by chunk, shuffled in a buffer, prefetched.

Nothing here reads a whole file (unless it is a single chunk). The event counts come from the
file headers, so the train/val/test split by fraction is a split of event numbers
(:func:`split_indices`, the same events as in memory); each split then reads *blocks*, whole
chunks along the event axis (HDF5 chunks, Parquet row groups, ROOT clusters), and keeps its own
events of each block (one vectorized selection). Labels are small and are read whole up front.

:class:`StreamingLoader` has the interface of :class:`~hepdl.data.loader.InMemoryLoader`:
``len()`` batches, ``batches(epoch, start)`` and ``n_events``, and the order of an epoch depends
only on ``(seed, epoch)``, so a resumed run sees the batches an uninterrupted one would. A
background thread reads the next blocks while the network trains on the current ones.

Each epoch reads every block that holds an event of the split. With a random split by event
(the default) that is every block, for training and again for validation: the price of splitting
events at random rather than by file (``data.split.files`` reads each file once per epoch).

Example
-------
>>> splits = streaming_splits(config.data, "classification", seed=1)
>>> loader = StreamingLoader(splits["train"], batch_size=1024, shuffle=True, seed=1)
>>> for inputs, labels in loader.batches(epoch=0):
...     ...
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from hepdl.config import CSV_NOT_STREAMED, DataConfig, FileSource, LcdSource, PathSpec
from hepdl.data import shards
from hepdl.data.dataset import (
    SPLITS,
    Dataset,
    _encode_labels,
    check_split_files,
    check_splits,
    split_indices,
)
from hepdl.data.lcd import read_lcd_observers, scan_lcd
from hepdl.data.readers import (
    ParquetRows,
    RootRows,
    expand_paths,
    hdf5_dataset,
    is_parquet,
    open_hdf5,
    read_arrays,
    read_hdf5,
)
from hepdl.errors import ConfigError, DataError

READ_BYTES = 16 * 2**20
"""Bytes of events read at a time: whole chunks (row groups), at least one, about this much."""

Batch = tuple[dict[str, torch.Tensor], torch.Tensor | None]
Plan = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Blocks read together and the positions ``first:last`` of the split's events each gives."""


# --------------------------------------------------------------------------- files and blocks


@dataclass
class Blocks:
    """Ranges of events read at once: ``lo:hi`` of file ``file``, starting at event ``start``
    of all the files together (int64 arrays, one entry a block, in file order)."""

    file: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return len(self.file)


class Hdf5Reader:
    """How blocks of HDF5 files are read: straight into the float32 arrays (h5py converts)."""

    def open(self, path: Path):
        return open_hdf5(path)

    def fill(self, handle, input_keys: dict, out: dict[str, np.ndarray], lo: int, hi: int,
             path: Path) -> None:
        for name, keys in input_keys.items():
            if isinstance(keys, str):
                column = np.s_[:, 0] if handle[keys].ndim == 1 else None
                _read_rows(handle[keys], out[name], lo, hi, column, path, keys)
            else:
                for j, key in enumerate(keys):
                    _read_rows(handle[key], out[name], lo, hi, np.s_[:, j], path, key)


@dataclass
class RowReader:
    """How blocks of column files are read: every key of the inputs in one read of rows
    ``lo:hi`` (``open``: a path -> :class:`~hepdl.data.readers.ParquetRows` or
    :class:`~hepdl.data.readers.RootRows`), then copied into the float32 arrays."""

    open: Callable[[Path], ParquetRows | RootRows]

    def fill(self, handle, input_keys: dict, out: dict[str, np.ndarray], lo: int, hi: int,
             path: Path) -> None:
        keys = [k for spec in input_keys.values() for k in ([spec] if isinstance(spec, str)
                                                           else spec)]
        columns = handle.read(keys, lo, hi)
        for name, spec in input_keys.items():
            if isinstance(spec, str):
                out[name][...] = columns[spec].reshape(out[name].shape)
            else:
                for j, key in enumerate(spec):
                    out[name][:, j] = columns[key]


@dataclass
class EventFiles:
    """The events of an HDF5, LCD, Parquet or ROOT source as files, with what the headers and the
    small keys say.

    Attributes
    ----------
    files : list of Path
        The files, in reading order.
    counts : ndarray
        Events in each file.
    input_keys : dict
        Model input -> a dataset path (an array of any shape), or a list of 1-D datasets stacked
        as columns (N, k).
    input_shapes : dict of str to tuple of int
        Shape of one event of each input.
    chunk_rows : ndarray
        HDF5 chunk length along the event axis of the first input, per file (1 if contiguous).
    labels : ndarray or None
        Every event's label: class index (int64) or regression target (float32); None for a
        prediction input without labels.
    class_names : list of str
        Class names in label-index order (empty for regression).
    read_observers : callable
        Returns the observers of every event, ``{name: (N,) float64}``.
    nonfinite : {"error", "drop"}
        What NaN/Inf in an input does: ``error`` stops at the first block that holds one.
    reader : Hdf5Reader or RowReader
        How a block of the files is read.
    chunk_edges : list of ndarray, optional
        Per file, the events where its chunks (Parquet row groups, ROOT clusters) begin, and its
        count: chunks of any sizes. None: chunks of ``chunk_rows`` (HDF5).
    """

    files: list[Path]
    counts: np.ndarray
    input_keys: dict[str, str | list[str]]
    input_shapes: dict[str, tuple[int, ...]]
    chunk_rows: np.ndarray
    labels: np.ndarray | None
    class_names: list[str]
    read_observers: Callable[[], dict[str, np.ndarray]] = field(repr=False)
    nonfinite: str = "error"
    reader: Hdf5Reader | RowReader = field(default_factory=Hdf5Reader, repr=False)
    chunk_edges: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_events(self) -> int:
        return int(self.counts.sum())

    @property
    def event_bytes(self) -> int:
        """Bytes of one event of all inputs, as float32."""
        return sum(4 * int(np.prod(shape)) for shape in self.input_shapes.values())

    def blocks(self, read_bytes: int = READ_BYTES) -> Blocks:
        """Split every file into blocks of whole chunks, about ``read_bytes`` each (a chunk
        larger than that is a block of its own: no chunk is ever read twice in a pass)."""
        files, los, his = [], [], []
        for f, (n, chunk) in enumerate(zip(self.counts, self.chunk_rows, strict=True)):
            if self.chunk_edges is not None:
                edges = _merged(self.chunk_edges[f], read_bytes // max(self.event_bytes, 1))
                lo, hi = edges[:-1], edges[1:]
            else:
                rows = int(chunk) * max(1, read_bytes // max(int(chunk) * self.event_bytes, 1))
                lo = np.arange(0, int(n), rows, dtype=np.int64)
                hi = np.minimum(lo + rows, int(n))
            files.append(np.full(len(lo), f, dtype=np.int64))
            los.append(lo)
            his.append(hi)
        offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        file, lo = np.concatenate(files), np.concatenate(los)
        return Blocks(file=file, lo=lo, hi=np.concatenate(his), start=offsets[file] + lo)

    def read_block(self, handles: dict[int, object], file: int, lo: int, hi: int,
                   check_finite: bool = True) -> dict[str, np.ndarray]:
        """Events ``lo:hi`` of one file, every input as float32 ``(hi - lo, *shape)``.

        ``handles`` caches the open files of the calling thread (h5py objects stay in one
        thread); the caller closes them.

        Raises
        ------
        DataError
            The bytes cannot be read (truncated or partially written file), or an input holds
            NaN/Inf and ``check_finite`` is set.
        """
        path = self.files[file]
        if file not in handles:
            handles[file] = self.reader.open(path)
        out = {name: np.empty((hi - lo, *shape), dtype=np.float32)
               for name, shape in self.input_shapes.items()}
        if hi > lo:
            self.reader.fill(handles[file], self.input_keys, out, lo, hi, path)
        for name, value in out.items():
            keys = self.input_keys[name]
            if check_finite and not np.isfinite(value).all():
                rows = ~np.isfinite(value.reshape(len(value), -1)).all(axis=1)
                raise DataError(f"{path}:{keys if isinstance(keys, str) else ','.join(keys)}",
                                f"NaN or Inf in input {name!r} at event "
                                f"{lo + int(np.flatnonzero(rows)[0])} of this file (set "
                                "data.nonfinite: drop, with in_memory: true, to drop such "
                                "events)")
        return out

    def read_all(self, read_bytes: int = READ_BYTES) -> Iterator[dict[str, np.ndarray]]:
        """Every event's inputs in file order, one block of about ``read_bytes`` at a time."""
        blocks, handles = self.blocks(read_bytes), {}
        try:
            for file, lo, hi in zip(blocks.file, blocks.lo, blocks.hi, strict=True):
                yield self.read_block(handles, int(file), int(lo), int(hi))
        finally:
            _close(handles)


def _merged(edges: np.ndarray, rows: int) -> np.ndarray:
    """Block edges from chunk edges: consecutive chunks joined while a block holds at most
    ``rows`` events, a larger chunk alone. A loop over chunks (row groups), not events."""
    kept, previous = [int(edges[0])], int(edges[0])
    for edge in map(int, edges[1:]):
        if edge - kept[-1] > rows and previous > kept[-1]:
            kept.append(previous)
        previous = edge
    if previous > kept[-1]:
        kept.append(previous)
    return np.asarray(kept, dtype=np.int64)


def _read_rows(node, out: np.ndarray, lo: int, hi: int, dest, path: Path, key: str) -> None:
    """Read rows ``lo:hi`` of a dataset into ``out[dest]``; HDF5 converts the dtype."""
    if hi <= lo:
        return
    try:
        node.read_direct(out, np.s_[lo:hi], dest)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}:{key}", f"cannot be read ({exc}); truncated file?") from None


def _close(handles: dict[int, object]) -> None:
    for handle in handles.values():
        handle.close()
    handles.clear()


def _hdf5_events(data: DataConfig, task: str, path: PathSpec | None,
                 require_labels: bool = True) -> EventFiles:
    """Headers, labels and observer reader of an ``hdf5`` source (labels read whole)."""
    source: FileSource = data.source
    files = expand_paths(path or source.path)
    label = source.label
    if label is not None and not require_labels and not all(
            _holds(file, label) for file in files):
        label = None  # a prediction input without labels (in some file): scores only
    if label is None and require_labels:
        raise DataError("data.source.label", "no label key given; training needs labels")
    where = str(path or source.path)
    shapes: dict[str, tuple[int, ...]] = {}
    first_file: dict[str, Path] = {}
    counts, chunk_rows = [], []
    keys = [*([label] if label is not None else []), *source.observers.values()]
    for file in files:
        with open_hdf5(file) as handle:
            lengths = {}
            for name, spec in source.inputs.items():
                described = {}
                for key in [spec] if isinstance(spec, str) else spec:
                    node = hdf5_dataset(handle, file, key)
                    lengths[key] = node.shape[0] if node.ndim else 0
                    described[key] = tuple(node.shape[1:]), node.dtype
                _input_shape(name, spec, described, file, shapes, first_file)
            for key in keys:
                node = hdf5_dataset(handle, file, key)
                lengths[key] = node.shape[0] if node.ndim else 0
            first = source.inputs[next(iter(source.inputs))]
            node = handle[first if isinstance(first, str) else first[0]]
            chunk_rows.append(node.chunks[0] if node.chunks else 1)
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k} {n}" for k, n in lengths.items())
            raise DataError(str(file), f"keys hold different numbers of events: {detail}")
        counts.append(next(iter(lengths.values())))

    return _file_events(data, task, where, files, counts, chunk_rows, shapes, label, read_hdf5)


def _file_events(data: DataConfig, task: str, where: str, files: list[Path], counts: list[int],
                 chunk_rows: list[int], shapes: dict[str, tuple[int, ...]], label: str | None,
                 read_columns: Callable[[Path, list[str]], dict[str, np.ndarray]],
                 **more) -> EventFiles:
    """The :class:`EventFiles` of an ``hdf5`` or column-file source whose headers were read:
    the labels read whole now (``read_columns(file, keys)``), the observers when asked."""
    source: FileSource = data.source
    _not_empty(counts, where)
    raw = None if label is None else np.concatenate([read_columns(f, [label])[label]
                                                     for f in files])
    labels, class_names = _labels(raw, task, source, where)

    def read_observers() -> dict[str, np.ndarray]:
        if not source.observers:
            return {}
        parts = [read_columns(f, list(source.observers.values())) for f in files]
        return {name: np.concatenate([p[key] for p in parts]).astype(np.float64)
                for name, key in source.observers.items()}

    return EventFiles(files=files, counts=np.asarray(counts, dtype=np.int64),
                      input_keys=dict(source.inputs), input_shapes=shapes,
                      chunk_rows=np.asarray(chunk_rows, dtype=np.int64), labels=labels,
                      class_names=class_names, read_observers=read_observers,
                      nonfinite=data.nonfinite, **more)


def _input_shape(name: str, spec: str | list[str], described: dict, file: Path,
                 shapes: dict[str, tuple[int, ...]], first_file: dict[str, Path]) -> None:
    """Check one file's keys of an input, ``described`` as key -> (event shape, dtype): numbers,
    scalar columns when several are stacked, and the same event shape as in the files before
    (kept in ``shapes`` and ``first_file``)."""
    for key, (_, dtype) in described.items():
        if dtype.kind not in "fiub":
            raise DataError(f"data.source.inputs.{name}",
                            f"{key!r} holds {dtype} values; expected numbers")
    if isinstance(spec, str):
        shape = described[spec][0] or (1,)
    else:
        bad = [key for key, (event_shape, _) in described.items() if event_shape]
        if bad:
            raise DataError(f"data.source.inputs.{name}", f"{bad[0]!r} is not a scalar column; "
                                                          "give it as one key instead")
        shape = (len(spec),)
    if name not in shapes:
        shapes[name], first_file[name] = shape, file
    elif shape != shapes[name]:
        raise DataError(spec if isinstance(spec, str) else name,
                        f"event shape differs between files: {first_file[name].name} "
                        f"{shapes[name]}, {file.name} {shape}")


def _not_empty(counts: list[int], where: str) -> None:
    """Refuse files without events before their labels are read."""
    if not sum(counts):
        raise DataError(where, "the dataset is empty (0 events)")


def _labels(raw: np.ndarray | None, task: str, source: FileSource, where: str):
    """Every event's label (class index, or float target for regression) and the class names."""
    if raw is None:
        return None, list(source.class_names or [])
    if task == "regression":
        labels = np.asarray(raw, dtype=np.float32).reshape(len(raw), -1)
        return (labels[:, 0] if labels.shape[1] == 1 else labels), []
    labels, class_names = _encode_labels(raw, source.class_names, f"{where} label")
    return labels, list(class_names)


def _column_events(data: DataConfig, task: str, path: PathSpec | None,
                   require_labels: bool = True) -> EventFiles:
    """Headers, labels and observer reader of a Parquet (``table``) or ``root`` source; the
    labels and observers are columns, read whole (a column store reads them alone)."""
    source: FileSource = data.source
    files = expand_paths(path or source.path)
    tree = getattr(source, "tree", None)
    if source.kind == "table":
        csv = [f for f in files if not is_parquet(f)]
        if csv:
            raise DataError(str(csv[0]), CSV_NOT_STREAMED)
        open_rows = ParquetRows
    else:
        open_rows = partial(RootRows, tree=tree)
    label = source.label
    if label is None and require_labels:
        raise DataError("data.source.label", "no label key given; training needs labels")
    where = str(path or source.path)
    inputs = source.input_keys
    shapes: dict[str, tuple[int, ...]] = {}
    first_file: dict[str, Path] = {}
    counts, chunk_rows, edges, labelled = [], [], [], []
    for file in files:
        with contextlib.closing(open_rows(file)) as rows:
            rows.require([*inputs, *source.observers.values(),
                          *([label] if label is not None and require_labels else [])])
            labelled.append(label is not None and label in rows.names)
            every = rows.describe(inputs)  # one read of a ROOT file's first entry
            for name, spec in source.inputs.items():
                described = {key: every[key] for key in ([spec] if isinstance(spec, str)
                                                          else spec)}
                for key, (_, dtype) in described.items():
                    if dtype.kind == "O" and source.kind == "root":
                        raise DataError(f"{file}:{tree}:{key}", "is a jagged branch; expected "
                                                                "a flat branch")
                _input_shape(name, spec, described, file, shapes, first_file)
            counts.append(rows.n_rows)
            edges.append(rows.chunk_edges(inputs))
            chunk_rows.append(int(edges[-1][1] - edges[-1][0]) if len(edges[-1]) > 1 else 1)
    if not all(labelled):
        label = None  # a prediction input without labels (in some file): scores only
    return _file_events(data, task, where, files, counts, chunk_rows, shapes, label,
                        partial(read_arrays, source),
                        reader=RowReader(open_rows), chunk_edges=edges)


def _holds(file: Path, key: str) -> bool:
    """Whether an HDF5 file holds ``key`` (a path such as ``event/label``)."""
    with open_hdf5(file) as handle:
        return key in handle


def _lcd_events(data: DataConfig, task: str, path: PathSpec | None) -> EventFiles:
    source: LcdSource = data.source
    if task == "regression" and "energy" not in source.observers:
        raise ConfigError("data.source.observers", "energy regression (loss: mse) takes the "
                                                   "particle energy as target: add 'energy'")
    scan = scan_lcd(source, path)
    if scan.hits_inputs:
        raise ConfigError("data.in_memory", f"{', '.join(scan.hits_inputs)} stored as hits "
                                            "(zero-suppressed) are read whole, a twentieth of "
                                            "the dense size; set data.in_memory: true")
    labels, class_names = scan.labels, scan.class_names
    if task == "regression":  # the target is the particle energy (seeds/001)
        labels = read_lcd_observers(source, scan)["energy"].astype(np.float32)
        class_names = []
    return EventFiles(files=scan.files, counts=scan.counts, input_keys=dict(scan.input_keys),
                      input_shapes=scan.input_shapes, chunk_rows=scan.chunk_rows,
                      labels=labels, class_names=class_names,
                      read_observers=lambda: read_lcd_observers(source, scan),
                      nonfinite=data.nonfinite)


def streamable(data: DataConfig) -> bool:
    """Whether these events can be read chunk by chunk: an ``hdf5``, ``lcd``, Parquet or ``root``
    source without a selection, dropped events or scalar inputs
    (:meth:`~hepdl.config.DataConfig.not_streamable`), no CSV file and no input stored as hits in
    any split's files (those are read whole)."""
    if data.not_streamable() is not None:
        return False
    groups = list(data.split.files.values()) if data.split.files is not None else [None]
    if data.source.kind == "table":
        return all(is_parquet(f) for files in groups
                   for f in expand_paths(files or data.source.path))
    if data.source.kind != "lcd":
        return True
    return not any(scan_lcd(data.source, files).hits_inputs for files in groups)


def event_files(data: DataConfig, task: str = "classification",
                path: PathSpec | None = None, require_labels: bool = True) -> EventFiles:
    """The events of an ``hdf5``, ``lcd``, Parquet or ``root`` source, reading headers and
    labels only.

    Parameters
    ----------
    data : DataConfig
        The data section.
    task : {"classification", "regression"}
        How labels are read.
    path : str or list of str, optional
        Files to read instead of the source's own (a split's files).
    require_labels : bool
        False for prediction inputs: an ``hdf5`` file without the label key gives
        ``labels`` None.

    Raises
    ------
    DataError
        A file is missing or unreadable, keys hold different numbers of events, shapes differ
        between files, labels are bad, or there are no events.
    KeyNotFoundError
        A key is missing from a file.
    """
    if data.source.kind == "lcd":
        events = _lcd_events(data, task, path)
    elif data.source.kind == "hdf5":
        events = _hdf5_events(data, task, path, require_labels)
    elif data.source.kind in ("table", "root"):
        events = _column_events(data, task, path, require_labels)
    else:
        raise ConfigError("data.in_memory", f"false streams HDF5, Parquet and ROOT files; "
                                            f"source kind {data.source.kind!r} is read whole")
    if events.n_events == 0:
        raise DataError(str(path or events.files[0]), "the dataset is empty (0 events)")
    return events


# --------------------------------------------------------------------------- splits


@dataclass
class StreamingSplit:
    """One split of streamed events: sorted event numbers into :class:`EventFiles`.

    It answers what the training loop asks of a :class:`~hepdl.data.dataset.Dataset`
    (``len``, ``labels``, ``class_names``, ``input_shapes``) without reading an event.
    """

    name: str
    events: EventFiles
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> np.ndarray:
        return self.events.labels[self.index]

    @property
    def class_names(self) -> list[str]:
        return list(self.events.class_names)

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.events.input_shapes)

    def selection(self, blocks: Blocks) -> tuple[np.ndarray, np.ndarray]:
        """For each block, the split's events in it: positions ``first:last`` in this split.

        ``index`` is sorted, so a block's events are a contiguous run of the split.
        """
        first = np.searchsorted(self.index, blocks.start)
        last = np.searchsorted(self.index, blocks.start + (blocks.hi - blocks.lo))
        return first, last

    def load(self, read_bytes: int = READ_BYTES) -> Dataset:
        """The split's events in memory (read block by block; other events are never kept)."""
        return load_together({self.name: self}, read_bytes)[self.name]


def load_together(splits: dict[str, StreamingSplit],
                  read_bytes: int = READ_BYTES) -> dict[str, Dataset]:
    """Splits in memory, those of the same files in one pass: each block holding any of their
    events is read once, and its events are copied straight into their split's arrays. The
    memory is the kept events and one block, never the whole file nor a second copy."""
    loaded: dict[str, Dataset] = {}
    for events in {id(split.events): split.events for split in splits.values()}.values():
        same = {name: split for name, split in splits.items() if split.events is events}
        loaded.update(_load_one_pass(events, same, read_bytes))
    return {name: loaded[name] for name in splits}


def _load_one_pass(events: EventFiles, splits: dict[str, StreamingSplit],
                   read_bytes: int) -> dict[str, Dataset]:
    blocks = events.blocks(read_bytes)
    ranges = {name: split.selection(blocks) for name, split in splits.items()}
    inputs = {name: {key: np.empty((len(split), *shape), dtype=np.float32)
                     for key, shape in events.input_shapes.items()}
              for name, split in splits.items()}
    wanted = np.zeros(len(blocks.file), dtype=bool)
    for first, last in ranges.values():
        wanted |= last > first
    check = events.nonfinite == "error"

    def scatter(b: int, block: dict[str, np.ndarray]) -> None:  # the block is freed on return
        for name, split in splits.items():
            first, last = (int(edge[b]) for edge in ranges[name])
            rows = split.index[first:last] - blocks.start[b]
            for key, value in block.items():  # rows lie in the block by construction; with
                # mode="raise" numpy would first copy them into a buffer as large as the output
                np.take(value, rows, axis=0, out=inputs[name][key][first:last], mode="clip")

    handles: dict[int, object] = {}
    try:
        for b in np.flatnonzero(wanted):
            file = int(blocks.file[b])
            if file not in handles:  # blocks come in file order: one file open at a time
                _close(handles)
            # NaN/Inf: an error naming the file and event (streamable: nonfinite is "error")
            scatter(b, events.read_block(handles, file, int(blocks.lo[b]), int(blocks.hi[b]),
                                         check_finite=check))
    finally:
        _close(handles)
    observers = events.read_observers()
    return {name: Dataset(inputs[name], split.labels,
                          {key: value[split.index] for key, value in observers.items()},
                          split.class_names)
            for name, split in splits.items()}


def streaming_splits(data: DataConfig, task: str, seed: int) -> dict[str, StreamingSplit]:
    """The train, val and test splits of a streamable source, without reading an event.

    By fraction, the events are those :func:`~hepdl.data.dataset.load_splits` takes in memory
    (the same ``split_indices`` of the same event count); with ``data.split.files`` each split is
    every event of its files.

    Raises
    ------
    DataError
        As :func:`event_files` and :func:`~hepdl.data.dataset.check_splits`; also when split
        files disagree on class names or input shapes.
    """
    if data.split.files is None:
        events = event_files(data, task)
        index = split_indices(events.n_events, data.split, seed)
        splits = {name: StreamingSplit(name, events, index[name]) for name in SPLITS}
    else:
        splits = {}
        for name, files in data.split.files.items():
            events = event_files(data, task, path=files)
            splits[name] = StreamingSplit(name, events, np.arange(events.n_events))
        if "val" not in splits:
            splits["val"] = StreamingSplit("val", splits["train"].events, np.arange(0))
        check_split_files(splits, task)
    check_splits(splits, task)
    return splits


# --------------------------------------------------------------------------- the loader


class _Stopped(Exception):
    """The consumer went away: the producer thread ends."""


@dataclass
class _Failure:
    error: BaseException


_END = object()


def _in_background(produce: Callable[[Callable[[object], None]], None],
                   maxsize: int) -> Iterator:
    """Run ``produce(put)`` in a thread and yield what it puts, ``maxsize`` items ahead.

    The thread ends when ``produce`` returns, when it raises (the error is raised here, in the
    consumer), or when the consumer stops early: closing this generator (a ``break``, an error
    in the training loop, garbage collection) sets a stop flag that the next ``put`` sees, and
    waits for the thread, so no reader is left behind holding files open.
    """
    items: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
    stop = threading.Event()

    def put(item: object) -> None:
        while True:
            if stop.is_set():
                raise _Stopped
            try:
                items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def run() -> None:
        try:
            produce(put)
            put(_END)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the consumer, which raises it
            with contextlib.suppress(_Stopped):
                put(_Failure(exc))

    thread = threading.Thread(target=run, name="hepdl-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                items.get_nowait()
            except queue.Empty:
                break
        thread.join()


class StreamingLoader:
    """Shuffled mini-batches of a split too large for memory, read from HDF5 as it trains.

    An epoch is a permutation of the blocks (whole chunks, across all files), taken
    ``buffer_bytes`` at a time; the events of a buffer are shuffled together and cut into
    batches, and a batch that straddles two buffers takes the tail of one and the head of the
    next, so every batch but the last is full and there are ``ceil(n_events / batch_size)``.
    Block order and shuffles are drawn from ``(seed, epoch)`` and ``(seed, epoch, buffer)``, so
    ``batches(epoch, start)`` skips to batch ``start`` without reading the buffers before it.

    In data-parallel training (``ranks``) each rank reads a contiguous run of the epoch's
    events, about ``1/world`` of them, and only the blocks that hold it (a block at either end
    of the run is read by both neighbours, each keeping its own events). It cuts the run into
    its parts of the ``ceil(n_events / batch_size)`` batches (:mod:`hepdl.data.shards`), so the
    ranks' parts of a step add up to one batch of ``batch_size``.

    Parameters
    ----------
    split : StreamingSplit
        The events.
    batch_size : int
        Events per batch; the last batch of an epoch may be smaller.
    shuffle : bool
        Shuffle blocks and events each epoch (training) or keep file order (evaluation).
    seed : int
        Seed of the shuffles.
    label_dtype : torch.dtype, optional
        dtype of the label tensors (long for classes, float32 for regression).
    buffer_bytes : int, optional
        Bytes of events shuffled together; at least one block. Default: the default of
        ``data.shuffle_buffer_mb``.
    read_bytes : int
        Bytes read at a time, rounded to whole chunks (row groups, clusters).
    ranks : hepdl.training.distributed.Ranks, optional
        In data-parallel training, the rank whose share of the blocks this loader reads.

    Example
    -------
    >>> loader = StreamingLoader(split, batch_size=1024, shuffle=True, seed=1)
    >>> inputs, labels = next(loader.batches(epoch=3, start=10))
    """

    def __init__(self, split: StreamingSplit, *, batch_size: int, shuffle: bool = False,
                 seed: int = 0, label_dtype: torch.dtype | None = None,
                 buffer_bytes: int | None = None, read_bytes: int = READ_BYTES, ranks=None):
        self.split = split
        self.rank, self.world = (0, 1) if ranks is None else (ranks.rank, ranks.world)
        self.events = split.events
        self.n_events = len(split)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        if buffer_bytes is None:  # the schema holds the default
            buffer_bytes = DataConfig.model_fields["shuffle_buffer_mb"].default * 2**20
        labels = torch.from_numpy(np.ascontiguousarray(split.labels))
        self.labels = labels if label_dtype is None else labels.to(label_dtype)
        if self.world > 1:  # blocks small enough to deal out evenly: at least ~8 a rank
            whole = self.events.n_events * self.events.event_bytes
            read_bytes = min(read_bytes, max(1, whole // (8 * self.world)))
        blocks = self.events.blocks(read_bytes)
        first, last = split.selection(blocks)
        keep = np.flatnonzero(last > first)  # blocks with none of this split's events: unread
        self.blocks = Blocks(blocks.file[keep], blocks.lo[keep], blocks.hi[keep],
                             blocks.start[keep])
        self.first, self.last = first[keep], last[keep]
        block_bytes = int(((self.blocks.hi - self.blocks.lo).max(initial=1))
                          * self.events.event_bytes)
        self.blocks_per_buffer = max(1, buffer_bytes // max(block_bytes, 1))
        n_buffers = max(1, -(-len(self.blocks) // self.blocks_per_buffer))
        # about one buffer of batches queued: the next buffer is read while this one trains
        self.prefetch = max(2, -(-self.n_events // (n_buffers * batch_size)))

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.n_events // self.batch_size)

    def _seed(self, *more: int) -> np.random.Generator:
        return np.random.default_rng([self.seed % 2**63, *more])

    def plan(self, epoch: int) -> tuple[list[Plan], np.ndarray]:
        """This rank's reading plan of ``epoch`` and its events in each of the ``len(self)``
        batches. The plan is buffers in reading order, each ``(blocks, first, last)``: block
        numbers and, for each, the positions ``first:last`` of the split's events it gives."""
        order = np.arange(len(self.blocks))
        if self.shuffle:
            order = self._seed(epoch).permutation(order)
        first, last = self.first[order], self.last[order]
        sizes = shards.batch_parts(self.n_events, self.batch_size, self.rank, self.world)
        if self.world > 1:  # a contiguous run of the epoch's events, as many as its parts
            lo = sum(int(shards.batch_parts(self.n_events, self.batch_size, r, self.world).sum())
                     for r in range(self.rank))
            hi = lo + int(sizes.sum())
            ends = np.cumsum(last - first)
            starts = ends - (last - first)
            mine = (ends > lo) & (starts < hi)  # a block at either end is shared with a neighbour
            first = first + np.maximum(lo - starts, 0)
            last = last - np.maximum(ends - hi, 0)
            order, first, last = order[mine], first[mine], last[mine]
        step = self.blocks_per_buffer
        buffers = [(order[i:i + step], first[i:i + step], last[i:i + step])
                   for i in range(0, len(order), step)]
        return buffers, sizes

    def _read_buffer(self, blocks: np.ndarray, first: np.ndarray, last: np.ndarray, epoch: int,
                     number: int, handles: dict[int, object]
                     ) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        """The split's events ``first:last`` of some blocks, shuffled together (one scatter per
        block)."""
        counts = last - first
        n = int(counts.sum())
        # each rank shuffles its own buffers (rank 0's draws are one process's)
        rank = (self.rank,) if self.rank else ()
        position = (self._seed(epoch, number, *rank).permutation(n) if self.shuffle
                    else np.arange(n))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        inputs = {name: np.empty((n, *shape), dtype=np.float32)
                  for name, shape in self.events.input_shapes.items()}
        labels = torch.empty(n, *self.labels.shape[1:], dtype=self.labels.dtype)
        for i, b in enumerate(blocks):
            lo, hi = int(self.blocks.lo[b]), int(self.blocks.hi[b])
            block = self.events.read_block(handles, int(self.blocks.file[b]), lo, hi)
            rows = self.split.index[first[i]:last[i]] - self.blocks.start[b]
            full = len(rows) == hi - lo
            where = position[offsets[i]:offsets[i + 1]]
            for name, value in block.items():
                inputs[name][where] = value if full else value[rows]
            labels[torch.from_numpy(where)] = self.labels[first[i]:last[i]]
        return inputs, labels

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """Yield ``(inputs, labels)`` for the batches of ``epoch`` from batch number ``start``
        (in data-parallel training a rank's part of a batch can be empty)."""
        plan, sizes = self.plan(epoch)
        if start >= len(sizes):
            return iter(())
        skip = int(sizes[:start].sum())
        ends = np.cumsum([int((last - first).sum()) for _, first, last in plan])
        first_buffer = int(np.searchsorted(ends, skip, side="right"))
        offset = skip - (int(ends[first_buffer - 1]) if first_buffer else 0)

        def produce(put: Callable[[object], None]) -> None:
            handles: dict[int, object] = {}
            wanted = iter(sizes[start:].tolist())
            want = next(wanted, None)
            pending: list[Batch] = []
            waiting = 0
            try:
                for number in range(first_buffer, len(plan)):
                    inputs, labels = self._read_buffer(*plan[number], epoch, number, handles)
                    tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
                    n = len(labels)
                    pos = offset if number == first_buffer else 0
                    while want is not None:  # cut this buffer's events into the batches
                        take = min(want - waiting, n - pos)
                        if take:
                            pending.append(({k: v[pos:pos + take] for k, v in tensors.items()},
                                            labels[pos:pos + take]))
                            waiting, pos = waiting + take, pos + take
                        if waiting < want:  # the rest of this batch is in the next buffer
                            break
                        put(self._join(pending))
                        pending, waiting, want = [], 0, next(wanted, None)
                while want is not None:  # a rank's empty parts of the last steps
                    put(self._join(pending))
                    pending, want = [], next(wanted, None)
            finally:
                _close(handles)

        return _in_background(produce, self.prefetch)

    def _join(self, pieces: list[Batch]) -> Batch:
        """One batch from the pieces of consecutive buffers (none: an empty batch)."""
        if len(pieces) == 1:
            return pieces[0]
        if not pieces:
            return ({k: torch.empty(0, *shape) for k, shape in self.events.input_shapes.items()},
                    self.labels[:0])
        inputs = {k: torch.cat([p[0][k] for p in pieces]) for k in pieces[0][0]}
        return inputs, torch.cat([p[1] for p in pieces])

    def chunks(self) -> Iterator[dict[str, torch.Tensor]]:
        """The split's inputs block by block in file order (fitting preprocessing in one pass);
        all of the split's blocks, on any rank."""

        def produce(put: Callable[[object], None]) -> None:
            handles: dict[int, object] = {}
            try:
                for b in range(len(self.blocks)):
                    lo, hi = int(self.blocks.lo[b]), int(self.blocks.hi[b])
                    block = self.events.read_block(handles, int(self.blocks.file[b]), lo, hi)
                    rows = self.split.index[self.first[b]:self.last[b]] - self.blocks.start[b]
                    if len(rows) != hi - lo:
                        block = {k: v[rows] for k, v in block.items()}
                    put({k: torch.from_numpy(v) for k, v in block.items()})
            finally:
                _close(handles)

        return _in_background(produce, 2)

