"""MkDocs hook: the tutorials a build executes write their scratch folders into a temporary
directory of that build's own, removed when the build ends.

Each tutorial trains in ``tempfile.mkdtemp(prefix="hepdl-...")`` so that a reader running it
keeps the results; a docs build would leave about 140 MB of them behind each time. The build
points ``TMPDIR`` at a fresh directory before the notebooks run (their kernels inherit the
environment, and ``tempfile`` reads ``TMPDIR``), so it removes only what its own notebooks
made: a reader's folders and another build running at the same time are left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_scratch: dict[str, str | None] = {}


def on_pre_build(config):
    _scratch["before"] = os.environ.get("TMPDIR")
    _scratch["dir"] = tempfile.mkdtemp(prefix="hepdl-docs-build-")
    os.environ["TMPDIR"] = _scratch["dir"]


def on_post_build(config):
    before = _scratch.get("before")
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
    if _scratch.get("dir"):
        shutil.rmtree(_scratch["dir"], ignore_errors=True)


def on_build_error(error):
    on_post_build(None)
