"""Prediction files: one score per class, labels and observers per event, for downstream analysis.

The format follows the output's suffix: ``.h5``/``.hdf5`` (h5py), ``.parquet``, ``.csv``,
``.npz``, ``.root`` (uproot TTree ``predictions``). Written to a temporary name and renamed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hepdl.errors import DataError
from hepdl.evaluation.predictions import Predictions
from hepdl.runs import temporary_path

SUFFIXES = (".h5", ".hdf5", ".parquet", ".csv", ".npz", ".root")


def prediction_columns(pred: Predictions) -> dict[str, np.ndarray]:
    """Flat columns: ``score_<class>`` (or ``prediction``), ``label``, then the observers."""
    if pred.task == "regression":
        columns = {"prediction": pred.scores}
    else:
        columns = {f"score_{name}": pred.scores[:, i] for i, name in enumerate(pred.class_names)}
    if pred.labels is not None:
        columns["label"] = pred.labels
    columns.update(pred.observers)
    return columns


def write_predictions(pred: Predictions, output: str | Path) -> Path:
    """Write ``pred`` to ``output`` in the format its suffix names.

    Raises
    ------
    DataError
        The suffix names no supported format.
    """
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(str(output), f"unknown output format {suffix!r}; use one of "
                                     f"{', '.join(SUFFIXES)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    columns = prediction_columns(pred)
    tmp = temporary_path(output)
    try:
        if suffix in {".h5", ".hdf5"}:
            import h5py

            with h5py.File(tmp, "w") as handle:
                for name, values in columns.items():
                    handle.create_dataset(name, data=values, compression="gzip")
                handle.attrs["class_names"] = list(pred.class_names)
                handle.attrs["task"] = pred.task
        elif suffix in {".parquet", ".csv"}:
            import pandas as pd

            frame = pd.DataFrame(columns)
            if suffix == ".csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
        elif suffix == ".npz":
            with open(tmp, "wb") as handle:
                np.savez(handle, **columns)
        else:
            import uproot

            with uproot.recreate(tmp) as handle:  # a TTree: what every ROOT version reads
                handle.mktree("predictions", {k: v.dtype for k, v in columns.items()})
                handle["predictions"].extend(columns)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return output
