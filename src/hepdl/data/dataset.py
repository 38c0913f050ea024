"""A dataset in memory: named model inputs, labels, observers and class names; and its splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from hepdl.config import DataConfig, DigitsSource, FileSource, LcdSource, SplitConfig
from hepdl.data.hits import Hits
from hepdl.data.readers import expand_paths, read_arrays
from hepdl.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
PDG_CODES = (11, 13, 22, 111, 130, 211, 321, 2112, 2212)
"""Particle codes a label of particle type is likely to hold (electron ... proton)."""


@dataclass
class Dataset:
    """Events held as arrays with the event on axis 0.

    Attributes
    ----------
    inputs : dict of str to ndarray or Hits
        Model inputs by name (``ecal``, ``pixels``), float32; zero-suppressed calorimeter
        inputs read from a hits file are :class:`~hepdl.data.hits.Hits`.
    labels : ndarray or None
        Class indices (int64) for classification, float32 targets for regression.
    observers : dict of str to ndarray
        Per-event quantities kept beside predictions for binned evaluation (energy, pt).
    class_names : list of str
        Names of the classes in index order (empty for regression).
    """

    inputs: dict[str, np.ndarray | Hits]
    labels: np.ndarray | None
    observers: dict[str, np.ndarray] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def subset(self, index: np.ndarray) -> Dataset:
        """The events at ``index`` (a copy)."""
        return Dataset(
            inputs={k: v[index] for k, v in self.inputs.items()},
            labels=None if self.labels is None else self.labels[index],
            observers={k: v[index] for k, v in self.observers.items()},
            class_names=list(self.class_names),
        )

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of one event of each input."""
        return {k: tuple(v.shape[1:]) for k, v in self.inputs.items()}

    @property
    def hits_inputs(self) -> list[str]:
        """Inputs held as hits (zero-suppressed cells, :class:`~hepdl.data.hits.Hits`)."""
        return [k for k, v in self.inputs.items() if isinstance(v, Hits)]


# --------------------------------------------------------------------------- reading


def _digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return {"pixels": bunch.data.astype(np.float32), "label": bunch.target.astype(np.int64)}


def _read_file_source(source: FileSource, path_spec) -> tuple[dict, str | None, dict]:
    """Read every key a file source names, concatenated over its files."""
    files = expand_paths(path_spec)
    keys = list(source.input_keys)
    keys.extend(source.observers.values())
    keys.extend(source.select)
    if source.label is not None:
        keys.append(source.label)
    keys = list(dict.fromkeys(keys))

    per_file = [read_arrays(source, f, keys) for f in files]
    arrays = {}
    for key in keys:
        parts = [p[key] for p in per_file]
        shapes = {p.shape[1:] for p in parts}
        if len(shapes) > 1:
            detail = ", ".join(f"{f.name} {p.shape[1:]}" for f, p in zip(files, parts, strict=True))
            raise DataError(key, f"event shape differs between files: {detail}")
        arrays[key] = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if source.select:
        keep = selected(arrays, source.select)
        arrays = {key: value[keep] for key, value in arrays.items()}
    return arrays, source.label, {name: arrays[key] for name, key in source.observers.items()}


def selected(arrays: dict[str, np.ndarray], select: dict) -> np.ndarray:
    """Events whose value of each key lies in one of its closed ranges (``select``)."""
    n = len(next(iter(arrays.values())))
    keep = np.ones(n, dtype=bool)
    for key, ranges in select.items():
        value = arrays[key]
        if value.ndim != 1:
            raise DataError(f"data.source.select.{key}", f"holds arrays of shape {value.shape[1:]} "
                                                         "per event; expected one number")
        inside = np.zeros(n, dtype=bool)
        for low, high in ranges:
            inside |= ((value >= low) if low is not None else True) & (
                (value <= high) if high is not None else True)
        keep &= inside
    return keep


def _require_numbers(name: str, value: np.ndarray) -> None:
    if value.dtype.kind not in "fiub":
        raise DataError(f"data.source.inputs.{name}", f"holds {value.dtype} values; expected "
                                                      "numbers")


def _stack_inputs(source: FileSource, arrays: dict) -> dict[str, np.ndarray]:
    inputs = {}
    for name, keys in source.inputs.items():
        if isinstance(keys, str):
            value = arrays[keys]
            _require_numbers(name, value)
            if value.ndim == 1:
                value = value[:, None]
        else:
            columns = [arrays[k] for k in keys]
            bad = [k for k, c in zip(keys, columns, strict=True) if c.ndim != 1]
            if bad:
                raise DataError(f"data.source.inputs.{name}",
                                f"{bad[0]!r} is not a scalar column; give it as one key instead")
            for column in columns:
                _require_numbers(name, column)
            value = np.empty((len(columns[0]), len(columns)), dtype=np.float32)
            for j, column in enumerate(columns):  # no float64 copy of all the columns at once
                value[:, j] = column
        inputs[name] = np.ascontiguousarray(value, dtype=np.float32)
    return inputs


def _encode_labels(raw: np.ndarray, class_names: list[str] | None, where: str):
    """Class labels given as names or integers -> int64 indices and the class names."""
    raw = np.asarray(raw).reshape(len(raw), -1)
    if raw.shape[1] > 1:  # one-hot
        raw = raw.argmax(axis=1)
    raw = raw.ravel()
    if raw.dtype.kind in "USO":
        if raw.dtype.kind == "O":  # a text column's missing cells (a table's: None)
            import pandas as pd

            missing = np.flatnonzero(pd.isna(raw))
            if len(missing):
                raise DataError(where, f"{len(missing)} events have no label (first: event "
                                       f"{int(missing[0])})")
        present, inverse = np.unique(raw.astype(str), return_inverse=True)  # sorted names
        names = class_names or present.tolist()
        lookup = {n: i for i, n in enumerate(names)}
        unknown = [v for v in present.tolist() if v not in lookup]
        if unknown:
            raise DataError(where, f"label {unknown[0]!r} is not one of the class names {names}")
        codes = np.array([lookup[v] for v in present.tolist()], dtype=np.int64)  # per name
        return codes[inverse.ravel()], names
    if raw.dtype.kind == "f" and (not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw))):
        raise DataError(where, "class labels must be whole numbers (did you mean loss: mse?)")
    labels = raw.astype(np.int64)
    n_classes = len(class_names) if class_names else int(labels.max(initial=-1)) + 1
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        pdg = np.isin(np.abs(labels), PDG_CODES).mean() > 0.5
        raise DataError(
            where,
            f"{int(bad.sum())} labels out of range 0..{n_classes - 1} "
            f"(first: {int(labels[bad][0])} at event {int(np.flatnonzero(bad)[0])})"
            + ("; these look like PDG codes: LCD calorimeter files are read with source kind: "
               "lcd, which names the classes by |pdgID|" if pdg else ""),
        )
    present = np.unique(labels)
    if not class_names and n_classes > 2 * len(present) and np.isin(present, PDG_CODES).all():
        raise DataError(where, f"labels {', '.join(map(str, present[:6]))} look like PDG codes, "
                               f"not class indices ({n_classes} classes, "
                               f"{n_classes - len(present)} of them empty): LCD calorimeter files "
                               "are read with source kind: lcd, which names the classes by "
                               "|pdgID|")
    return labels, class_names or [str(i) for i in range(n_classes)]


def _check_finite(dataset: Dataset, policy: str, where: str) -> Dataset:
    """NaN/Inf in inputs: an error with counts and where, or the events dropped."""
    bad_events = np.zeros(len(dataset), dtype=bool)
    report = []
    for name, value in dataset.inputs.items():
        if isinstance(value, Hits):  # the bad hits' events and cells, never a dense array
            wrong = ~torch.isfinite(value.value)
            if bool(wrong.any()):
                events = value.rows()[wrong].numpy()
                bad_events[events] = True
                report.append(f"{name}: {int(wrong.sum())} values in "
                              f"{len(np.unique(events))} events (first event {int(events[0])}, "
                              f"feature {int(value.index[wrong][0])})")
            continue
        bad = ~np.isfinite(value.reshape(len(value), -1))
        if bad.any():
            rows = bad.any(axis=1)
            bad_events |= rows
            cols = np.flatnonzero(bad.any(axis=0))
            report.append(f"{name}: {int(bad.sum())} values in {int(rows.sum())} events "
                          f"(first event {int(np.flatnonzero(rows)[0])}, feature {int(cols[0])})")
    if not bad_events.any():
        return dataset
    if policy == "error":
        raise DataError(where, "NaN or Inf in inputs: " + "; ".join(report)
                        + " (set data.nonfinite: drop to drop these events)")
    return dataset.subset(np.flatnonzero(~bad_events))


def load_dataset(data: DataConfig, task: str = "classification", path=None,
                 require_labels: bool = True) -> Dataset:
    """Read a dataset as the data section describes it.

    Parameters
    ----------
    data : DataConfig
        The data section.
    task : {"classification", "regression"}
        How labels are read: class indices, or float targets.
    path : str or list of str, optional
        Files to read instead of the source's own (a split's files, or ``hepdl predict --input``).
    require_labels : bool
        False for prediction files, which may have no labels.

    Raises
    ------
    DataError
        Missing files or keys, NaN/Inf, bad labels, an empty dataset or mismatched shapes.
    """
    source = data.source
    where = "data.source"
    if isinstance(source, DigitsSource):
        arrays = _digits()
        pixels = arrays["pixels"].reshape(-1, 8, 8) if source.images else arrays["pixels"]
        inputs, raw_labels, observers, class_names = (
            {"pixels": pixels}, arrays["label"], {}, [str(i) for i in range(10)])
    elif isinstance(source, LcdSource):
        from hepdl.data.lcd import read_lcd

        if task == "regression" and "energy" not in source.observers:
            raise ConfigError("data.source.observers", "energy regression (loss: mse) takes the "
                                                       "particle energy as target: add 'energy'")
        events = read_lcd(source, path)
        inputs, raw_labels, observers, class_names = (
            events["inputs"], events["labels"], events["observers"], events["class_names"])
        if task == "regression":  # the target is the particle energy (seeds/001)
            raw_labels = observers["energy"]
        where = str(path) if path else "data.source.files"
    else:
        arrays, label_key, observers = _read_file_source(source, path or source.path)
        inputs = _stack_inputs(source, arrays)
        raw_labels = arrays[label_key] if label_key is not None else None
        class_names = source.class_names
        where = str(path or source.path)
        lengths = {k: len(v) for k, v in {**inputs, **observers}.items()}
        if raw_labels is not None:
            lengths["label"] = len(raw_labels)
        if len(set(lengths.values())) > 1:
            raise DataError(where, f"arrays have different numbers of events: {lengths}")

    if len(next(iter(inputs.values()))) == 0:
        raise DataError(where, "the dataset is empty (0 events)")
    if raw_labels is None and require_labels:
        raise DataError("data.source.label", "no label key given; training needs labels")

    if raw_labels is None:
        labels, class_names = None, list(class_names or [])
    elif task == "regression":
        labels = np.asarray(raw_labels, dtype=np.float32).reshape(len(raw_labels), -1)
        if labels.shape[1] == 1:
            labels = labels[:, 0]
        class_names = []
    else:
        labels, class_names = _encode_labels(raw_labels, class_names, f"{where} label")

    observers = {k: np.asarray(v, dtype=np.float64) for k, v in observers.items()}
    dataset = Dataset(inputs, labels, observers, list(class_names))
    return _check_finite(dataset, data.nonfinite, where)


def split_indices(n: int, split: SplitConfig, seed: int) -> dict[str, np.ndarray]:
    """Random train/val/test indices by fraction, or by fold (``split.folds``); the same for
    the same ``n`` and seed (``split.seed``, else ``seed``), so the folds of one seed never
    share an event.

    Raises
    ------
    DataError
        With folds, when the validation events leave none to train on beside the test fold.
    """
    order = np.random.default_rng(seed if split.seed is None else split.seed).permutation(n)
    if split.folds is not None:
        edges = np.linspace(0, n, split.folds + 1).round().astype(int)
        test = order[edges[split.fold]:edges[split.fold + 1]]
        rest = np.concatenate([order[:edges[split.fold]], order[edges[split.fold + 1]:]])
        n_val = int(round(split.val * n))
        if len(rest) - n_val < 1:
            raise DataError("data.split.val", f"{n_val} validation events of {n} leave none to "
                                              f"train on beside fold {split.fold} of "
                                              f"{split.folds}")
        return {"train": np.sort(rest[n_val:]), "val": np.sort(rest[:n_val]),
                "test": np.sort(test)}
    n_train = int(round(split.train * n))
    n_val = int(round(split.val * n))
    return {"train": np.sort(order[:n_train]), "val": np.sort(order[n_train:n_train + n_val]),
            "test": np.sort(order[n_train + n_val:])}


def check_splits(splits: dict, task: str) -> None:
    """Refuse an empty train or test split, and a training split of a single class.

    ``splits`` maps split names to objects with ``len()``, ``labels`` and ``class_names``
    (a :class:`Dataset`, or a streamed split whose events are not read yet).

    Raises
    ------
    DataError
        Naming the split, or the single class.
    """
    for name in ("train", "test"):
        if len(splits[name]) == 0:
            raise DataError(f"data.split.{name}", "is empty; give more events or a larger fraction")
    if task == "classification":
        present = np.unique(splits["train"].labels)
        if len(present) < 2:
            names = splits["train"].class_names
            only = names[present[0]] if len(present) else "none"
            raise DataError("data", f"the training split holds a single class ({only!r}); "
                                    "classification needs at least two")


def check_split_files(splits: dict, task: str) -> None:
    """Splits read from separate files must agree on class names and input shapes.

    ``splits`` maps names to objects with ``len()``, ``class_names`` and ``input_shapes``
    (a :class:`Dataset` or a streamed split).
    """
    names = {name: tuple(d.class_names) for name, d in splits.items() if len(d)}
    if task == "classification" and len(set(names.values())) > 1:
        raise DataError("data.split.files", f"class names differ between splits: {names}")
    shapes = {name: d.input_shapes for name, d in splits.items()}
    if len({tuple(sorted(s.items())) for s in shapes.values()}) > 1:
        raise DataError("data.split.files", f"input shapes differ between splits: {shapes}")


class _SplitsOnDemand(dict):
    """The splits of data larger than memory: a split's events are read when it is looked up.

    ``load_splits(data, task, seed)["test"]`` reads the test events only (by index, chunk by
    chunk); the checks of :func:`check_splits` ran on the labels alone.
    """

    def __init__(self, data: DataConfig, task: str, seed: int):
        super().__init__()
        from hepdl.data.streaming import streaming_splits

        self.streamed = streaming_splits(data, task, seed)

    def __missing__(self, name: str) -> Dataset:
        self[name] = self.streamed[name].load()
        return self[name]


def load_split(data: DataConfig, task: str, seed: int, name: str) -> Dataset:
    """One split (``train``, ``val`` or ``test``), the one :func:`load_splits` makes (the same
    events for the same ``seed``). Events that can stream (HDF5, LCD, Parquet, ROOT) are read
    chunk by chunk and the other splits' are never read; other sources are read whole.

    Raises
    ------
    DataError
        As :func:`load_dataset` and :func:`check_splits`.
    """
    from hepdl.data.streaming import streamable, streaming_splits

    if streamable(data):
        return streaming_splits(data, task, seed)[name].load()
    return load_splits(data, task, seed)[name]


def load_splits(data: DataConfig, task: str, seed: int) -> dict[str, Dataset]:
    """The train, val and test datasets: split by fraction with ``seed``, or read from split files.

    With ``data.in_memory`` false no event is read here: each split is read (by index, chunk by
    chunk) when it is first looked up, so ``load_splits(...)["test"]`` reads the test split only.

    Raises
    ------
    DataError
        As :func:`load_dataset`; also when the training split holds a single class or a split
        is empty.
    """
    if not data.in_memory:
        return _SplitsOnDemand(data, task, seed)
    from hepdl.data.streaming import load_together, streamable, streaming_splits

    if streamable(data):  # read block by block into the splits: never the file whole too
        return load_together(streaming_splits(data, task, seed))
    if data.split.files is not None:
        splits = {name: load_dataset(data, task, path=files)
                  for name, files in data.split.files.items()}
        if "val" not in splits:
            splits["val"] = splits["train"].subset(np.arange(0))
        check_split_files(splits, task)
    else:
        dataset = load_dataset(data, task)
        index = split_indices(len(dataset), data.split, seed)
        splits = {name: dataset.subset(idx) for name, idx in index.items()}
    check_splits(splits, task)
    return splits


def load_shards(data: DataConfig, task: str, seed: int,
                take: Callable[[str, int], np.ndarray]) -> tuple[dict[str, Dataset],
                                                                 dict[str, int]]:
    """Part of the train and val splits of :func:`load_splits`, and every split's size.

    ``take(name, n)`` gives the sorted positions kept of split ``name`` of ``n`` events (a data-
    parallel rank's shard). Events that could stream (:func:`~hepdl.data.streaming.streamable`)
    are read chunk by chunk and only the kept events are held; others are read whole, then cut.
    """
    from hepdl.data.streaming import StreamingSplit, load_together, streamable, streaming_splits

    if streamable(data):
        streamed = streaming_splits(data, task, seed)
        sizes = {name: len(split) for name, split in streamed.items()}
        kept = {name: StreamingSplit(name, streamed[name].events,
                                     streamed[name].index[take(name, sizes[name])])
                for name in ("train", "val")}
        return load_together(kept), sizes  # train and val in one pass over the blocks
    splits = load_splits(data, task, seed)
    sizes = {name: len(split) for name, split in splits.items()}
    return {name: splits[name].subset(take(name, sizes[name])) for name in ("train", "val")}, sizes

