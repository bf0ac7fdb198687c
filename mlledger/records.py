"""Frozen value types and the one converter that owns their JSON form."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

if TYPE_CHECKING:
    import cattrs

_T = TypeVar("_T")

__all__ = [
    "RefEntry",
    "converter",
    "from_iso",
    "is_config",
    "is_stand_in",
    "now_iso",
    "param_fields",
    "record_digests",
    "to_iso",
    "utcnow",
]


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def to_iso(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


#: (second, its ISO text up to the seconds): a run's two timestamps reuse it in a tight loop
_iso_second: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """``to_iso(utcnow())``, a few times faster: the date part is formatted once a second."""
    global _iso_second
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    cached = _iso_second
    if cached[0] != sec:
        cached = _iso_second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{cached[1]}.{ns // 1000:06d}Z"


def from_iso(s: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


#: the keys of the stand-in a param gets when its value is not inline (a stored value's
#: description and digest, or the type and repr of a value that could not be stored)
_STAND_IN_KEYS = frozenset({"type", "len", "shape", "dtype", "digest", "repr", "error"})


def is_stand_in(v: Any) -> bool:
    """Whether a recorded param value is a stand-in (``{"type", "len", "digest"}``, ``{"type",
    "repr"}``...) rather than the user's own dict: it has no fields to reach into."""
    return (
        isinstance(v, dict)
        and "type" in v
        and len(v) > 1
        and v.keys() <= _STAND_IN_KEYS
        and ("digest" in v or "repr" in v or "error" in v)
    )


def is_config(v: Any) -> bool:
    """A dict param with fields (a dict, or a dataclass, attrs or namedtuple value recorded
    as one), not a stand-in for a stored value."""
    return isinstance(v, dict) and bool(v) and not is_stand_in(v)


def param_fields(params: dict[str, Any], *, nodes: bool = False) -> dict[str, Any]:
    """A run's params with the fields of config params under dotted names:
    ``{"cfg": {"optim": {"lr": 0.1}}}`` gives ``{"cfg.optim.lr": 0.1}``.

    One reading for queries, diffs and tables.  A param literally named
    ``cfg.optim.lr`` wins over the field.  An empty dict and a stand-in for a stored
    value stay values (they have no fields); lists stay whole.  ``nodes`` keeps the
    dicts themselves too (``cfg``, ``cfg.optim``: a query on them compares their JSON
    text).  A config is inline JSON of bounded size, so the walk is too.
    """
    out = {k: v for k, v in params.items() if nodes or not is_config(v)}
    for name, value in params.items():
        if not is_config(value):
            continue
        # depth first, fields in their order: (dotted prefix, the dict's items left)
        stack = [(name, iter(value.items()))]
        while stack:
            prefix, items = stack[-1]
            item = next(items, None)
            if item is None:
                stack.pop()
                continue
            key, v = f"{prefix}.{item[0]}", item[1]
            inner = isinstance(v, dict) and bool(v)
            if nodes or not inner:
                out.setdefault(key, v)
            if inner:
                stack.append((key, iter(v.items())))
    return out


def record_digests(rec: dict[str, Any]) -> Iterator[str]:
    """Every object a run record refers to: inputs, outputs, stored params, env, code, git diff."""
    for key in ("inputs", "outputs"):
        for a in (rec.get(key) or {}).values():
            yield a["digest"]
    # a param too large to inline is stored as an object only the param refers to:
    # {"type": ..., "digest": "algo:hex"}
    for v in (rec.get("params") or {}).values():
        if isinstance(v, dict) and isinstance(v.get("digest"), str) and ":" in v["digest"]:
            yield v["digest"]
    if rec.get("env"):
        yield rec["env"]
    mods = (rec.get("code") or {}).get("modules")
    if mods:
        yield mods
    gd = (rec.get("git") or {}).get("diff")
    if gd:
        yield gd


class _Converter:
    """The one cattrs converter of the records, made on first use: importing cattrs
    costs a first run ~10 ms, and most runs never structure a record.  ``structure``
    and ``unstructure`` go straight to it; anything else of cattrs' API through
    ``__getattr__``."""

    def __init__(self) -> None:
        self._made: cattrs.Converter | None = None

    def get(self) -> cattrs.Converter:
        """The cattrs converter itself."""
        made = self._made
        if made is None:
            import cattrs

            made = cattrs.Converter(forbid_extra_keys=False)
            made.register_unstructure_hook(_dt.datetime, to_iso)
            made.register_structure_hook(_dt.datetime, lambda v, _t: from_iso(v))
            self._made = made
        return made

    def unstructure(self, obj: Any) -> Any:
        return self.get().unstructure(obj)

    def structure(self, data: Any, cl: type[_T]) -> _T:
        return self.get().structure(data, cl)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


converter = _Converter()


@attrs.frozen
class RefEntry:
    """One move of a named ref: never changed once written.

    ``action`` is ``set`` or ``rollback``; a rollback names in ``restores``
    the sequence number of the entry whose target it brings back.  The audit
    chain (see ``mlledger.store.chain``): ``prev`` is the digest of the entry
    before, ``run_entry`` the digest of the final entry of ``run`` when it had
    ended, ``seal`` this entry's own digest; all None in entries written before
    the chain.  ``force`` is True when the move overrode a protected ref's policy
    (its message or checks); absent from the JSON otherwise.
    """

    name: str
    seq: int
    target: str
    at: _dt.datetime
    user: str
    host: str
    message: str | None = None
    action: str = "set"
    restores: int | None = None
    run: str | None = None
    run_entry: str | None = None
    prev: str | None = None
    seal: str | None = None
    force: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = converter.unstructure(self)
        for key in ("run_entry", "prev", "seal"):  # absent rather than null when unset
            if out.get(key) is None:
                out.pop(key, None)
        if not out.get("force"):  # entries of unforced moves read as before
            out.pop("force", None)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RefEntry:
        return converter.structure(data, cls)


@attrs.frozen
class Artifact:
    """A stored file, folder (``tree``) or Python value (``value``), named by its digest.

    ``producers`` and ``consumers`` (run ids) are filled when the artifact
    comes from :meth:`Ledger.artifact`.
    """

    digest: str
    size: int
    kind: str  # file | tree | value
    format: str | None = None  # for values: json | npy | parquet | torch | pickle
    path: str | None = None  # for files and trees: where it was
    files: int | None = None  # for trees: how many files
    producers: tuple[str, ...] = attrs.field(default=(), eq=False)
    consumers: tuple[str, ...] = attrs.field(default=(), eq=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"digest": self.digest, "size": self.size, "kind": self.kind}
        if self.format is not None:
            out["format"] = self.format
        if self.path is not None:
            out["path"] = self.path
        if self.files is not None:
            out["files"] = self.files
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            digest=data["digest"],
            size=int(data.get("size", 0)),
            kind=data.get("kind", "file"),
            format=data.get("format"),
            path=data.get("path"),
            files=data.get("files"),
        )


@attrs.frozen
class RunError:
    """Why a run failed: the exception's type, message and formatted traceback."""

    type: str
    message: str
    traceback: str

    @property
    def summary(self) -> str:
        """``ValueError: it broke``, or the type alone when there is no message
        (``KeyboardInterrupt``)."""
        return f"{self.type}: {self.message}" if self.message else self.type


@attrs.frozen
class MetricStats:
    """A metric's summary: last value, min, max, last step and how many values."""

    last: float
    min: float
    max: float
    step: int | None
    count: int
