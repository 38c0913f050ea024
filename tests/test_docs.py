"""The documentation: reference pages generated from the code, and a strict MkDocs build.

The build here does not execute the tutorial notebooks (``HEPDL_DOCS_EXECUTE=false``); CI
(``.ci/run``) builds the site again with every notebook executed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from hepdl import config as schema

from .conftest import ROOT


def _hook():
    spec = importlib.util.spec_from_file_location("reference", ROOT / "docs/hooks/reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sections(page: str) -> dict[str, str]:
    """Heading (the dotted path) -> the table below it."""
    parts = re.split(r"^## `([^`]+)`.*$", page, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_field_of_every_section_is_in_the_config_reference():
    hook = _hook()
    sections = _sections(hook.config_reference())
    walked: list = []
    hook._walk(schema.Config, "", walked)
    for path, model in walked:  # each section lists exactly its model's fields
        rows = re.findall(r"^\| `(\w+)` \|", sections[path or "top level"], flags=re.M)
        assert sorted(rows) == sorted(model.model_fields), path
    models = {v for v in vars(schema).values() if isinstance(v, type) and
              issubclass(v, BaseModel) and v.__module__ == schema.__name__ and v.model_fields}
    reached = {model for _, model in walked}
    assert models - reached <= {schema.FileSource}  # the base of the file sources only
    for model in models:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
    assert "| `epochs` | int (≥ 1) | `30` | Passes over the training split. |" in sections["train"]
    assert {"data.source (kind: lcd)", "model (name: cnn)"} <= set(sections)


def test_a_field_added_to_the_schema_appears_without_an_edit():
    class Train(schema.TrainConfig):
        warmup_epochs: int = Field(default=2, ge=0, description="Epochs of linear warm-up.")

    class Extended(schema.Config):
        train: Train = Field(default_factory=Train, description="The loop.")
        comment: str = Field(default="", description="Free text kept with the run.")

    sections = _sections(_hook().config_reference(Extended))
    assert "| `comment` | str | `\"\"` | Free text kept with the run. |" in sections["top level"]
    assert ("| `warmup_epochs` | int (≥ 0) | `2` | Epochs of linear warm-up. |"
            in sections["train"])


def test_the_cli_reference_has_every_command_and_the_transforms_page_every_transform():
    import typer

    from hepdl.cli import app
    from hepdl.preprocess import list_transforms

    page = _hook().cli_reference()

    def commands(group, prefix):
        for name, command in group.commands.items():
            yield f"{prefix} {name}"
            if hasattr(command, "commands"):  # a group (typer's own click types)
                yield from commands(command, f"{prefix} {name}")

    names = list(commands(typer.main.get_command(app), "hepdl"))
    assert len(names) > 20
    for name in names:  # each command has its own heading, with its usage line
        assert re.search(rf"^#+ `{name}`$", page, flags=re.M), name
        assert f"$ {name} [OPTIONS]" in page, name
    transforms = _hook().transforms_reference()
    for name in list_transforms():
        assert f"## `{name}`" in transforms


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    env = {**os.environ, "HEPDL_DOCS_EXECUTE": "false", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    for name in ["hepdl.train", "hepdl.load_config", "hepdl.Run", "hepdl.scan", "plot_roc"]:
        assert name in api
    assert (tmp_path / "site" / "tutorials" / "normalization" / "index.html").is_file()


def test_the_build_removes_the_scratch_folders_its_tutorials_make_and_no_other(tmp_path,
                                                                              monkeypatch):
    spec = importlib.util.spec_from_file_location("scratch", ROOT / "docs/hooks/scratch.py")
    scratch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scratch)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    (tmp_path / "hepdl-eid-reader").mkdir()  # a reader's results, or another build's
    scratch.on_pre_build(None)
    try:
        kernel = subprocess.run(  # a notebook's kernel: a process started by the build
            [sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp(prefix='hepdl-'))"],
            capture_output=True, text=True, check=True)
        made = Path(kernel.stdout.strip())
        assert made.is_dir() and str(made.parent) == scratch._scratch["dir"]  # the build's own
    finally:
        scratch.on_post_build(None)
    assert not made.exists() and not made.parent.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["hepdl-eid-reader"]
    assert os.environ["TMPDIR"] == str(tmp_path)
