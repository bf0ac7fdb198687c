"""Opening an MLflow tracking store for ``mlledger import mlflow`` (see ``mlflow.py``).

A local folder or database is checked to be an MLflow store before MLflow's
client sees it (the client would create a new, empty one); the client is made
with what MLflow 3 needs to open a file store; its warnings become lines of the
report; its refusals become one :class:`FormatError` naming the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlparse

from ..capture.redact import redact_text
from ..errors import FormatError, LedgerError, MissingExtraError, NotFoundError

__all__ = [
    "HINT",
    "CollectWarnings",
    "check_database",
    "check_folder",
    "client",
    "database_path",
    "experiments",
    "file_store_allowed",
    "half_written",
    "mlflow_warnings",
    "redact_uri",
    "refused",
    "resolve",
    "runs",
]

#: how to install what the import needs
HINT = "pip install 'mlledger[mlflow]'"
_PAGE = 1000
_RUN_FOLDER = re.compile(r"[0-9a-f]{32}")


def resolve(uri: str) -> tuple[str, str | None]:
    """The tracking URI for MLflow's client and, for a file store, its folder; checks that
    a local folder or database is an MLflow store before MLflow sees it (it would create
    a new, empty one)."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if len(scheme) == 1 or scheme == "":  # a path (a Windows drive letter is no scheme)
        path = os.path.abspath(uri)
        if os.path.isfile(path):
            check_database(path)
            return f"sqlite:///{path}", None
        check_folder(path)
        return path, path
    if scheme == "file":
        path = os.path.abspath(unquote(parsed.path))
        check_folder(path)
        return uri, path
    if scheme == "sqlite":
        db = database_path(uri)
        if db is not None:
            check_database(db)
        return uri, None
    return uri, None  # a tracking server, another database: its client says what is wrong


def database_path(source: str) -> str | None:
    """The local file of a ``sqlite:///`` tracking URI (None: another kind of store)."""
    if not source.lower().startswith("sqlite://"):
        return None
    path = unquote(source.split("://", 1)[1])
    if path.startswith("/"):
        path = path[1:]  # sqlite:///rel.db is relative, sqlite:////abs.db absolute
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return os.path.abspath(path)


def check_folder(path: str) -> None:
    if not os.path.exists(path):
        raise NotFoundError(f"no MLflow store at {path}: no such folder; give the mlruns folder")
    if not os.path.isdir(path):
        raise FormatError(f"{path} is not an MLflow store: not a folder nor a database")
    with os.scandir(path) as it:
        if any(e.is_dir() and os.path.isfile(os.path.join(e.path, "meta.yaml")) for e in it):
            return
    raise FormatError(
        f"{path} is not an MLflow tracking store: no experiment folder with a meta.yaml in it; "
        "give the mlruns folder (or a sqlite:/// URI)"
    )


def check_database(path: str) -> None:
    if not os.path.isfile(path):
        raise NotFoundError(f"no MLflow database at {path}: no such file")
    with open(path, "rb") as f:
        head = f.read(16)
    if head != b"SQLite format 3\x00":
        raise FormatError(f"{path} is not an MLflow store: not an SQLite database nor a folder")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        finally:
            con.close()
    except sqlite3.Error as e:
        raise FormatError(f"{path}: cannot read the database ({e})") from e
    if not {"alembic_version", "experiments", "runs"} <= tables:
        raise FormatError(
            f"{path} is an SQLite database but not an MLflow tracking store "
            "(no experiments, runs and alembic_version tables)"
        )


@contextlib.contextmanager
def file_store_allowed() -> Iterator[None]:
    """MLflow 3 refuses to open a file store unless told (reading one to move off it is
    what it asks users to do), and draws a progress bar per artifact: both set while the
    import reads, and put back."""
    settings = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    old = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class CollectWarnings(logging.Filter):
    """Keeps what MLflow's reader warns about on the root logger (a malformed experiment
    folder, with a traceback) as lines of the report, and drops it there."""

    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self.into = into

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}mlflow{os.sep}" not in record.pathname:
            return True  # somebody else's record: untouched
        if record.levelno >= logging.WARNING:
            with contextlib.suppress(Exception):
                self.into.append("MLflow: " + " ".join(record.getMessage().split())[:300])
        return False


@contextlib.contextmanager
def mlflow_warnings(into: list[str]) -> Iterator[None]:
    """While the import reads: MLflow's warnings on the root logger become report lines."""
    root = logging.getLogger()
    keep = CollectWarnings(into)
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def client(source: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise MissingExtraError(f"importing from MLflow needs its client: {HINT}") from e
    try:
        return MlflowClient(tracking_uri=source)
    except Exception as e:
        raise refused(source, e) from e


def refused(source: str, e: Exception) -> LedgerError:
    """MLflow's own refusal of the store, as one line naming it."""
    if isinstance(e, LedgerError):
        return e
    if isinstance(e, ImportError):
        return MissingExtraError(f"reading {redact_uri(source)} needs {e.name or e}: {HINT}")
    text = " ".join(str(e).split())
    first = text.split(". ")[0]
    what = redact_uri(source.removeprefix("sqlite:///"))
    if "schema" in text:
        return FormatError(
            f"{what}: MLflow cannot read this database ({first}); upgrade it with "
            "'mlflow db upgrade', or install the MLflow version that wrote it"
        )
    return FormatError(f"{what}: MLflow cannot read this store ({first})")


def redact_uri(uri: str) -> str:
    return redact_text(uri)


def experiments(client: Any) -> list[Any]:
    from mlflow.entities import ViewType

    return list(client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=50000))


def runs(client: Any, experiment_ids: list[str]) -> Iterator[Any]:
    if not experiment_ids:
        return
    from mlflow.entities import ViewType

    token = None
    while True:
        page = client.search_runs(
            experiment_ids, run_view_type=ViewType.ACTIVE_ONLY, max_results=_PAGE, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def half_written(root: str, exps: dict[str, str]) -> list[str]:
    """A warning for each run folder of a file store that has no meta.yaml."""
    out = []
    for exp_id in sorted(exps):
        folder = os.path.join(root, exp_id)
        with contextlib.suppress(OSError), os.scandir(folder) as it:
            for e in sorted(it, key=lambda e: e.name):
                meta = os.path.join(e.path, "meta.yaml")
                if e.is_dir() and _RUN_FOLDER.fullmatch(e.name) and not os.path.exists(meta):
                    out.append(f"skipped a half-written run: {meta} is missing")
    return out
