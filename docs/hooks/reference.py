"""MkDocs hook: the reference pages generated from the code at build time, never by hand.

- ``reference/config.md``: every section and field of the config schema (the pydantic models of
  :mod:`hepdl.config`): type with its bounds, default, meaning.
- ``reference/transforms.md``: every registered preprocessing transform, from its docstring.
- ``reference/cli.md``: every command of the typer app, by typer's own docs generator.

A field, transform or command added to the code appears here with no edit to the docs.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel

try:
    from mkdocs.structure.files import File
except ImportError:  # imported by the tests without MkDocs: only the page builders are used
    File = None


# --------------------------------------------------------------------------- config schema


def _bounds(field) -> str:
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥"}
    parts = []
    for item in field.metadata:
        for name, symbol in symbols.items():
            value = getattr(item, name, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return f" ({', '.join(parts)})" if parts else ""


def _type(annotation: Any, sections: dict[type, str]) -> str:
    """An annotation in words: ``"a" | "b"``, ``list of float``, ``mapping str → ...``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0], sections)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a, sections) for a in args)
    if origin is list:
        return f"list of {_inner(args[0], sections)}"
    if origin is tuple:
        return f"({', '.join(_type(a, sections) for a in args)})"
    if origin is dict:
        return f"mapping {_inner(args[0], sections)} → {_inner(args[1], sections)}"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{sections[annotation]})" if annotation in sections \
            else annotation.__name__
    return getattr(annotation, "__name__", str(annotation))


def _inner(annotation: Any, sections: dict[type, str]) -> str:
    """An annotation inside a list or mapping: a union in parentheses."""
    text = _type(annotation, sections)
    return f"({text})" if " | " in text else text


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "its defaults"
    return f"`{json.dumps(value)}`"


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The config sections inside an annotation (unions, lists, dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _walk(model: type[BaseModel], path: str, out: list[tuple[str, type[BaseModel]]]) -> None:
    out.append((path, model))
    for name, field in model.model_fields.items():
        for child in _models(field.annotation):
            kind = child.model_fields.get("kind") or child.model_fields.get("name")
            tag = typing.get_args(kind.annotation) if kind is not None else ()
            where = f"{path}.{name}" if path else name
            if typing.get_origin(field.annotation) is dict or any(
                    typing.get_origin(a) is dict for a in typing.get_args(field.annotation)):
                where += ".<key>"
            if len(tag) == 1 and len(_models(field.annotation)) > 1:
                where += f" ({'kind' if 'kind' in child.model_fields else 'name'}: {tag[0]})"
            _walk(child, where, out)


def _anchor(path: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in path.lower()).strip("-") or "config"


def config_reference(root: type[BaseModel] | None = None) -> str:
    """The config reference page: one table per section, every field (of ``root``, default
    hepdl's :class:`Config`)."""
    from hepdl.config import Config

    sections: list[tuple[str, type[BaseModel]]] = []
    _walk(root or Config, "", sections)
    anchors = {}
    for path, model in sections:
        anchors.setdefault(model, _anchor(path))
    lines = ["# Configuration reference", "",
             "Generated from the pydantic models of `hepdl.config` when the docs are built: "
             "every section, every field, its type, default and meaning. A config is YAML with "
             "these sections; `--set section.field=value` (or `hepdl.load_config(path, "
             "section__field=value)`) changes one field. Unknown keys are errors.", ""]
    for path, model in sections:
        title = path or "top level"
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        lines += [f"## `{title}` {{#{_anchor(path)}}}", ""]
        if doc:
            lines += [doc, ""]
        lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
        # a source's kind first (inherited fields come before it); the sort is stable
        for name, field in sorted(model.model_fields.items(), key=lambda f: f[0] != "kind"):
            kind = _type(field.annotation, anchors) + _bounds(field)
            meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
            if name == "preprocess":
                meaning += " See [the transforms](transforms.md)."
            lines.append(f"| `{name}` | {kind.replace('|', '&#124;')} | {_default(field)} | "
                         f"{meaning} |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- transforms


def transforms_reference() -> str:
    """One entry per registered transform, rendered by mkdocstrings from its class."""
    from hepdl.preprocess.base import _TRANSFORMS

    lines = ["# Preprocessing transforms", "",
             "The transforms a `preprocess:` chain names, as `name` or `{name: {option: "
             "value}}`, in the order they apply. Each is fitted on the training split and saved "
             "inside the model (and its ONNX export). Generated from the registry of "
             "`hepdl.preprocess`.", ""]
    for name in sorted(_TRANSFORMS):
        cls = _TRANSFORMS[name]
        lines += [f"## `{name}`", "", f"::: {cls.__module__}.{cls.__qualname__}",
                  "    options:", "      show_root_heading: false", "      members: false",
                  "      show_bases: false", "      show_root_toc_entry: false", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def cli_reference() -> str:
    """Every command, argument and option of ``hepdl``, by typer's docs generator."""
    import typer
    import typer.cli

    from hepdl.cli import app

    command = typer.main.get_command(app)
    context = typer.Context(command, info_name="hepdl")
    return typer.cli.get_docs_for_click(obj=command, ctx=context, name="hepdl",
                                        title="Command line reference")


# --------------------------------------------------------------------------- the hook

PAGES = {"reference/config.md": config_reference, "reference/transforms.md": transforms_reference,
         "reference/cli.md": cli_reference}


def on_files(files, config):
    for uri, build in PAGES.items():
        files.append(File.generated(config, uri, content=build()))
    return files
