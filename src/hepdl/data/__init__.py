"""Reading physics data: files to named arrays, datasets, splits and batch loaders."""

from hepdl.data.dataset import Dataset, load_dataset, load_split, load_splits, split_indices

__all__ = ["Dataset", "load_dataset", "load_split", "load_splits", "split_indices"]
