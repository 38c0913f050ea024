"""The LCD (CLIC) calorimeter files: ECAL and HCAL images, the particle's class and its truth.

The dataset (REFERENCES.md) came in several key layouts:

========  ==================================================================================
layout    keys
========  ==================================================================================
v1        ``ECAL`` (N, 25, 25, 25), ``HCAL`` (N, 5, 5, 60), ``target`` (N, 1, 5); one file
          per particle, the class is the file-name prefix before ``Escan`` (``EleEscan_1_2.h5``)
v2, v3    as v1, plus ``pdgID`` (N,); 10,000 events a file; the class is |pdgID|
v4        nested groups: ``ECAL/ECAL``, ``HCAL/HCAL``, ``Event/energy``, ``Event/px``,
          ``Event/py``, ``Event/pz``, ``Event/pdgID``
merged    ``ECAL``, ``HCAL``, ``target``, ``index`` (the class index) and ``OneHot`` (N, 4)
========  ==================================================================================

|pdgID| 11, 22, 111 and 211 are the classes Ele, Gamma, Pi0 and ChPi. The column order of
``target`` differs between versions: :class:`~hepdl.config.LcdSource` names it
(``target_columns``, default energy, px, py, pz, pdgID).

:func:`scan_lcd` reads only the file headers and the small per-event keys (classes), which is all
the streaming loader needs; :func:`read_lcd` reads every event into memory.

Example
-------
>>> from hepdl.config import LcdSource
>>> source = LcdSource(kind="lcd", layout="v1", files="data/*Escan_*.h5")
>>> events = read_lcd(source)
>>> events["inputs"]["ecal"].shape, events["class_names"]
((40000, 25, 25, 25), ['Ele', 'Gamma', 'Pi0', 'ChPi'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hepdl.config import LcdSource, PathSpec
from hepdl.data.readers import expand_paths, hdf5_dataset, open_hdf5
from hepdl.errors import DataError

PDG_CLASSES = {11: "Ele", 22: "Gamma", 111: "Pi0", 211: "ChPi"}
"""|pdgID| -> class name of the LCD particles."""

CLASS_ORDER = list(PDG_CLASSES.values())
"""Default class order: Ele, Gamma, Pi0, ChPi (merged files: the names of index 0..3)."""

INPUT_KEYS = {
    "v1": {"ecal": "ECAL", "hcal": "HCAL"},
    "v2": {"ecal": "ECAL", "hcal": "HCAL"},
    "v3": {"ecal": "ECAL", "hcal": "HCAL"},
    "v4": {"ecal": "ECAL/ECAL", "hcal": "HCAL/HCAL"},
    "merged": {"ecal": "ECAL", "hcal": "HCAL"},
}
"""Dataset path of each calorimeter, by layout."""

PDG_KEYS = {"v2": "pdgID", "v3": "pdgID", "v4": "Event/pdgID"}
TARGET_KEY = "target"
FILE_CLASS = re.compile(r"^([A-Za-z0-9]+?)Escan")


@dataclass
class LcdFiles:
    """What the headers and the small per-event keys of LCD files say; no image is read.

    Attributes
    ----------
    files : list of Path
        The files, in reading order.
    counts : ndarray
        Events in each file (int64).
    input_keys : dict of str to str
        Model input (``ecal``, ``hcal``) -> dataset path in each file.
    input_shapes : dict of str to tuple of int
        Shape of one event of each input, the same in every file.
    chunk_rows : ndarray
        HDF5 chunk length along the event axis of the first input, per file (1 if contiguous).
    labels : ndarray
        Class index of every event (int64), files concatenated.
    class_names : list of str
        Class names in label-index order.
    hits_inputs : list of str
        Inputs stored as hits (zero-suppressed cells, :mod:`hepdl.data.hits`), in every file.
    """

    files: list[Path]
    counts: np.ndarray
    input_keys: dict[str, str]
    input_shapes: dict[str, tuple[int, ...]]
    chunk_rows: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    hits_inputs: list[str] = field(default_factory=list)


def class_from_file_name(path: Path) -> str:
    """The particle of an original-release file: the name's prefix before ``Escan``.

    Raises
    ------
    DataError
        The name does not start with ``<Class>Escan``.

    Example
    -------
    >>> class_from_file_name(Path("data/EleEscan_1_2.h5"))
    'Ele'
    """
    match = FILE_CLASS.match(path.name)
    if match is None:
        raise DataError(str(path), "cannot tell the particle from the file name; expected "
                                   "<Class>Escan*.h5 such as EleEscan_1_2.h5, or give "
                                   "data.source.files as {class: files}")
    return match.group(1)


def _grouped_files(source: LcdSource, spec: PathSpec | dict[str, PathSpec]) -> list[
        tuple[Path, str | None]]:
    """Every file with the class its name or group gives (v1), else None."""
    if isinstance(spec, dict):
        return [(f, name if source.layout == "v1" else None)
                for name, files in spec.items() for f in expand_paths(files)]
    return [(f, class_from_file_name(f) if source.layout == "v1" else None)
            for f in expand_paths(spec)]


def input_node(handle, path: Path, key: str):
    """The node of an input: a dataset of dense events, or a group of hits; and its shape.

    Raises
    ------
    KeyNotFoundError
        ``key`` is neither (the message lists the datasets there, nearest first).
    """
    from hepdl.data.hits import hits_shape, is_hits_group

    node = handle.get(key)
    if is_hits_group(node):
        return node, hits_shape(node)
    node = hdf5_dataset(handle, path, key)
    return node, node.shape


def _read_small(node, path: Path, key: str) -> np.ndarray:
    """A whole small dataset (classes, truth), or a DataError if its bytes are damaged."""
    try:
        return node[()]
    except OSError as exc:
        raise DataError(f"{path}:{key}", f"cannot be read ({exc}); truncated file?") from None


def _pdg_ids(raw: np.ndarray, path: Path, key: str) -> np.ndarray:
    """|pdgID| as int64; a non-integer or unknown id is a DataError."""
    raw = np.asarray(raw).reshape(len(raw), -1)[:, 0]
    if raw.dtype.kind not in "iuf":
        raise DataError(f"{path}:{key}", f"holds {raw.dtype} values; expected particle ids")
    ids = np.abs(np.rint(raw)).astype(np.int64)
    unknown = ~np.isin(ids, list(PDG_CLASSES)) | (ids != np.abs(raw))
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        known = ", ".join(f"{pdg} ({name})" for pdg, name in PDG_CLASSES.items())
        raise DataError(f"{path}:{key}", f"particle id {raw[first].item()!r} at event {first} "
                                         f"is not one of {known}")
    return ids


def _merged_index(handle, path: Path) -> np.ndarray:
    """Class indices of a merged file: ``index``, else the argmax of ``OneHot``."""
    if "index" in handle or "OneHot" not in handle:
        raw = _read_small(hdf5_dataset(handle, path, "index"), path, "index")
        raw = np.asarray(raw).reshape(len(raw), -1)[:, 0]
        if raw.dtype.kind not in "iuf" or np.any(raw != np.rint(raw)):
            raise DataError(f"{path}:index", "class indices must be whole numbers")
        return raw.astype(np.int64)
    one_hot = _read_small(handle["OneHot"], path, "OneHot")
    return np.asarray(one_hot).reshape(len(one_hot), -1).argmax(axis=1).astype(np.int64)


def _class_order(found: list[str], override: list[str] | None, where: str) -> list[str]:
    """Class names in index order: the override (which must hold every class found), or
    the LCD order Ele, Gamma, Pi0, ChPi, then other names sorted."""
    if override is not None:
        missing = [name for name in found if name not in override]
        if missing:
            raise DataError(where, f"class {missing[0]!r} is not in data.source.class_names "
                                   f"{override}")
        return list(override)
    known = [name for name in CLASS_ORDER if name in found]
    return known + sorted(set(found) - set(known))


def scan_lcd(source: LcdSource, path: PathSpec | None = None) -> LcdFiles:
    """Read the headers and class keys of an LCD source: files, event counts, shapes, labels.

    Parameters
    ----------
    source : LcdSource
        The source section.
    path : str or list of str, optional
        Files to read instead of ``source.files`` (a split's files); v1 classes then come
        from the file names.

    Class order (label index): ``source.class_names`` if given; else for v1 the order of the
    ``files`` keys, or with a plain path the LCD order Ele, Gamma, Pi0, ChPi of the classes
    found (other names after, sorted); v2-v4 the LCD order of the classes found; merged
    Ele, Gamma, Pi0, ChPi.

    Returns
    -------
    LcdFiles

    Raises
    ------
    DataError
        A file is missing, unreadable or truncated; the keys of a file hold different numbers of
        events; an input's event shape differs between files; a class cannot be found.
    KeyNotFoundError
        A key of the layout is missing (the message lists the keys there, nearest first).
    """
    from hepdl.data.hits import is_hits_group

    spec = path if path is not None else source.files
    grouped = _grouped_files(source, spec)
    keys = {name: INPUT_KEYS[source.layout][name] for name in source.inputs}
    counts, chunk_rows, names, shapes = [], [], [], {}
    per_file_classes: list[np.ndarray | str] = []
    first_file: dict[str, Path] = {}
    hits: set[str] = set()
    merged_names = list(source.class_names or CLASS_ORDER)
    for file, group_class in grouped:
        with open_hdf5(file) as handle:
            lengths = {}
            for name, key in keys.items():
                node, node_shape = input_node(handle, file, key)
                if is_hits_group(node):
                    hits.add(name)
                lengths[key] = node_shape[0] if len(node_shape) else 0
                shape = tuple(node_shape[1:])
                if name not in shapes:
                    shapes[name], first_file[name] = shape, file
                elif shape != shapes[name]:
                    raise DataError(key, f"event shape differs between files: "
                                         f"{first_file[name].name} {shapes[name]}, "
                                         f"{file.name} {shape}")
            chunks = getattr(handle[keys[source.inputs[0]]], "chunks", None)
            chunk_rows.append(chunks[0] if chunks else 1)
            if source.layout == "v1":
                per_file_classes.append(group_class)
            elif source.layout == "merged":
                index = _merged_index(handle, file)
                bad = (index < 0) | (index >= len(merged_names))
                if bad.any():
                    event = int(np.flatnonzero(bad)[0])
                    raise DataError(f"{file}:index", f"class index {int(index[event])} at event "
                                                     f"{event} is out of range for the class "
                                                     f"names {merged_names} (set "
                                                     "data.source.class_names)")
                per_file_classes.append(index)
                lengths["index"] = len(index)
            else:
                key = PDG_KEYS[source.layout]
                ids = _pdg_ids(_read_small(hdf5_dataset(handle, file, key), file, key), file, key)
                per_file_classes.append(ids)
                lengths[key] = len(ids)
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k} {n}" for k, n in lengths.items())
            raise DataError(str(file), f"keys hold different numbers of events: {detail}")
        counts.append(next(iter(lengths.values())))
        names.append(file)

    where = "data.source.files"
    if source.layout == "v1":
        found = list(dict.fromkeys(per_file_classes))
        # {class: files} gives the order; classes from file names take the LCD order
        class_names = (found if isinstance(spec, dict) and source.class_names is None else
                       _class_order(found, source.class_names, where))
        lookup = {name: i for i, name in enumerate(class_names)}
        labels = np.repeat(np.array([lookup[c] for c in per_file_classes], dtype=np.int64),
                           counts)
    elif source.layout == "merged":
        class_names = merged_names
        labels = np.concatenate(per_file_classes)
    else:
        ids = np.concatenate(per_file_classes)
        present, inverse = np.unique(ids, return_inverse=True)
        class_names = _class_order([PDG_CLASSES[int(p)] for p in present], source.class_names,
                                   where)
        lookup = np.array([class_names.index(PDG_CLASSES[int(p)]) for p in present],
                          dtype=np.int64)
        labels = lookup[inverse.ravel()]
    return LcdFiles(files=names, counts=np.asarray(counts, dtype=np.int64), input_keys=keys,
                    input_shapes=shapes, chunk_rows=np.asarray(chunk_rows, dtype=np.int64),
                    labels=labels.astype(np.int64, copy=False), class_names=class_names,
                    hits_inputs=sorted(hits))


def read_lcd_observers(source: LcdSource, files: LcdFiles) -> dict[str, np.ndarray]:
    """The observers of every event (float64): columns of ``target``, or ``Event/<name>`` (v4).

    Raises
    ------
    DataError
        ``target`` has fewer columns than ``target_columns`` needs, or cannot be read.
    KeyNotFoundError
        ``target`` (or ``Event/<name>``) is missing.
    """
    if not source.observers:
        return {}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in source.observers}
    for file, n in zip(files.files, files.counts, strict=True):
        with open_hdf5(file) as handle:
            if source.layout == "v4":
                for name in source.observers:
                    key = f"Event/{name}"
                    value = _read_small(hdf5_dataset(handle, file, key), file, key)
                    parts[name].append(np.asarray(value, dtype=np.float64).reshape(n, -1)[:, 0])
                continue
            node = hdf5_dataset(handle, file, TARGET_KEY)
            target = np.asarray(_read_small(node, file, TARGET_KEY), dtype=np.float64)
            target = target.reshape(len(target), -1)
            if len(target) != n:
                raise DataError(f"{file}:{TARGET_KEY}", f"holds {len(target)} events; the images "
                                                        f"hold {n}")
            for name in source.observers:
                column = source.target_columns.index(name)
                if column >= target.shape[1]:
                    raise DataError(f"{file}:{TARGET_KEY}", f"has {target.shape[1]} columns; "
                                    f"data.source.target_columns puts {name!r} in column "
                                    f"{column} of {source.target_columns}")
                parts[name].append(target[:, column])
    return {name: np.concatenate(values) for name, values in parts.items()}


def read_inputs_into(node, out: np.ndarray, lo: int, hi: int, file: Path, key: str) -> None:
    """Read events ``lo:hi`` of a dataset straight into ``out`` (HDF5 converts the dtype).

    Raises
    ------
    DataError
        The bytes cannot be read (a truncated or partially written file).
    """
    if hi <= lo:
        return
    try:
        node.read_direct(out, np.s_[lo:hi])
    except (OSError, ValueError) as exc:
        raise DataError(f"{file}:{key}", f"cannot be read ({exc}); truncated file?") from None


def read_lcd(source: LcdSource, path: PathSpec | None = None) -> dict:
    """Read every event of an LCD source into memory.

    Parameters
    ----------
    source : LcdSource
        The source section.
    path : str or list of str, optional
        Files to read instead of ``source.files``.

    Returns
    -------
    dict
        ``inputs`` {``ecal``: (N, 25, 25, 25), ``hcal``: (N, 5, 5, 60)} float32 (those asked
        for), ``labels`` (N,) int64, ``observers`` {name: (N,) float64}, ``class_names``.

    Raises
    ------
    DataError, KeyNotFoundError
        As :func:`scan_lcd` and :func:`read_lcd_observers`.
    """
    from hepdl.data.hits import Hits, is_hits_group, read_hits

    files = scan_lcd(source, path)
    total = int(files.counts.sum())
    # One array per input, filled file by file: no second copy from concatenating.
    inputs = {name: np.empty((total, *shape), dtype=np.float32)
              for name, shape in files.input_shapes.items() if name not in files.hits_inputs}
    hits: dict[str, list[Hits]] = {name: [] for name in files.hits_inputs}
    offset = 0
    for file, n in zip(files.files, files.counts, strict=True):
        with open_hdf5(file) as handle:
            for name, key in files.input_keys.items():
                if name in hits:
                    if not is_hits_group(handle[key]):
                        raise DataError(f"{file}:{key}", "is stored dense here and as hits in "
                                                         "another file; convert every file")
                    hits[name].append(read_hits(handle[key], f"{file}:{key}"))
                    continue
                read_inputs_into(handle[key], inputs[name][offset:offset + n], 0, int(n), file,
                                 key)
        offset += int(n)
    inputs.update({name: Hits.concatenate(parts) for name, parts in hits.items()})
    inputs = {name: inputs[name] for name in files.input_keys}  # the configured order
    if source.scalar_inputs:  # per-event scalars as inputs of their own, (N, 1)
        scalars = read_lcd_observers(source.model_copy(update={
            "observers": list(source.scalar_inputs)}), files)
        inputs.update({name: scalars[name].astype(np.float32)[:, None]
                       for name in source.scalar_inputs})
    return {"inputs": inputs, "labels": files.labels,
            "observers": read_lcd_observers(source, files), "class_names": files.class_names}
