"""MkDocs hook: remove the scratch folders the tutorials make when the build executes them.

Each tutorial trains in ``tempfile.mkdtemp(prefix="hepdl-...")`` so that a reader running it
keeps the results; a docs build would leave about 140 MB of them behind each time. The folders
there before the build (a reader's) are kept.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

PREFIXES = ("hepdl-better-", "hepdl-eid-", "hepdl-normalization-", "hepdl-benchmarks-",
            "hepdl-basics-")
_before: set[Path] = set()


def _folders() -> set[Path]:
    return {folder for prefix in PREFIXES
            for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*") if folder.is_dir()}


def on_pre_build(config):
    _before.clear()
    _before.update(_folders())


def on_post_build(config):
    for folder in _folders() - _before:
        shutil.rmtree(folder, ignore_errors=True)
