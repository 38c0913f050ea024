"""The exceptions hepdl raises for bad input: each names what is wrong and what was expected.

The command line turns any :class:`HepdlError` into one line on stderr and exit code 2
(a traceback only with ``hepdl --debug``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HepdlError(Exception):
    """Base class of every error hepdl raises for bad input or a failed run."""


class ConfigError(HepdlError):
    """A configuration value is missing, unknown or of the wrong type.

    Parameters
    ----------
    path : str
        Dotted path of the field (``train.lr``), or the config file.
    message : str
        What is wrong and what was expected.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class DataError(HepdlError):
    """A data file is missing, unreadable, or holds data that cannot be used as asked."""

    def __init__(self, source: str, message: str):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class KeyNotFoundError(DataError, KeyError):
    """A key, branch or column is not in a file; the message lists what is there, nearest first.

    Like uproot's ``KeyInFileError`` it is also a :class:`KeyError`.
    """

    def __init__(self, source: str, key: str, available: Iterable[str], what: str = "key"):
        self.key = key
        self.available = list(available)
        hint = nearest_first(key, self.available)
        shown = ", ".join(repr(k) for k in hint[:10]) or "none"
        more = f" (+{len(hint) - 10} more)" if len(hint) > 10 else ""
        super().__init__(source, f"no {what} {key!r}; the file has {shown}{more}")

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


class TrainingError(HepdlError):
    """Training stopped because it failed (a NaN loss, say); the run is marked failed."""


def nearest_first(name: str, choices: Iterable[str]) -> list[str]:
    """Return ``choices`` with the close matches of ``name`` first (difflib), then the rest."""
    choices = list(choices)
    if not choices:
        return []
    close = difflib.get_close_matches(name, choices, n=len(choices), cutoff=0.4)
    return close + [c for c in choices if c not in close]
