"""Where a scan's study lives: a journal file that needs no server, or a database by URL.

Optuna's JournalStorage on a file takes many writers at once (SQLite does not: "database is
locked"); PostgreSQL (``postgresql://user@host/db``) serves workers on many machines.
Passwords in a URL are never printed: :func:`redact` hides them.
"""

from __future__ import annotations

import re
from pathlib import Path

from hepdl.config import Config
from hepdl.errors import ConfigError

JOURNAL = "journal://"


def default_storage(config: Config) -> str:
    """``journal://RUNS_DIR/NAME/study.journal``."""
    return f"{JOURNAL}{Path(config.runs_dir) / config.name / 'study.journal'}"


def redact(url: str) -> str:
    """The URL with any password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str):
    """An Optuna storage for ``journal://PATH``, ``postgresql://...``, ``mysql://...`` or
    ``sqlite:///PATH`` (one worker only).

    Raises
    ------
    ConfigError
        An unknown scheme, or a database that cannot be reached or logged into.
    """
    import optuna

    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len(JOURNAL):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.split("://")[0].split("+")[0] in {"postgresql", "mysql", "sqlite"}:
        # no Optuna heartbeat: it would fail a killed worker's trial without queueing its values
        # again; hepdl's own sign of life (reap_lost_trials) does both, for every storage
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as exc:  # SQLAlchemy's errors, or a database driver not installed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError("scan.storage", f"cannot open {redact(url)}: {first}") from None
    raise ConfigError("scan.storage", f"unknown storage {redact(url)!r}; expected "
                                      "journal://PATH, postgresql://..., mysql://... or sqlite:///")
