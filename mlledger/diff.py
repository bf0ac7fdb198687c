"""What changed between two runs, and nothing else.

Sections: ``params``, ``metrics``, ``inputs``, ``outputs``, ``code``, ``git``,
``packages``, ``env_vars``, ``python``, ``platform``.  Times, resource
figures, process ids, hosts' uptime and the like are never changes; two
runs that differ in nothing else give an empty diff.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from . import canonical
from .errors import LedgerError
from .hashing import digest_bytes
from .records import is_config, is_stand_in, param_fields

if TYPE_CHECKING:
    from .runs import Run

__all__ = ["SECTIONS", "Change", "RunDiff", "diff_runs"]

SECTIONS = (
    "params",
    "metrics",
    "inputs",
    "outputs",
    "code",
    "git",
    "packages",
    "env_vars",
    "python",
    "platform",
)
_MISSING: Any = attrs.NOTHING


@attrs.frozen
class Change:
    """One difference: ``old`` is None when added, ``new`` is None when removed; ``kind``
    says which (a param recorded as None that became 5 is ``changed``, not ``added``)."""

    section: str
    key: str
    old: Any
    new: Any
    _kind: str | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def kind(self) -> str:
        if self._kind is not None:
            return self._kind
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"

    @property
    def delta(self) -> float | None:
        """``new - old`` for numbers."""
        if (
            isinstance(self.old, (int, float))
            and isinstance(self.new, (int, float))
            and not isinstance(self.old, bool)
            and not isinstance(self.new, bool)
        ):
            return self.new - self.old
        return None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.section, self.key, self.old, self.new))


@attrs.frozen
class RunDiff:
    """The changes from run ``a`` to run ``b``; iterates as :class:`Change`."""

    a: str
    b: str
    changes: tuple[Change, ...]

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def section(self, name: str) -> list[Change]:
        return [c for c in self.changes if c.section == name]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"section": c.section, "key": c.key, "old": c.old, "new": c.new, "kind": c.kind}
            for c in self.changes
        ]

    def to_text(self, color: bool = False) -> str:
        """Readable text, grouped by section (ANSI colours when ``color``)."""
        if not self.changes:
            return f"runs {self.a} and {self.b} differ in nothing but time\n"
        red, green, yellow, bold, reset = (
            ("\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[1m", "\x1b[0m") if color else ("",) * 5
        )
        lines = [f"diff {self.a} -> {self.b}"]
        for sec in SECTIONS:
            changes = self.section(sec)
            if not changes:
                continue
            lines.append(f"{bold}{sec}{reset}")
            for c in changes:
                if c.kind == "added":
                    lines.append(f"  {green}+ {c.key}: {_fmt(c.new)}{reset}")
                elif c.kind == "removed":
                    lines.append(f"  {red}- {c.key}: {_fmt(c.old)}{reset}")
                else:
                    d = c.delta
                    extra = f" ({d:+.6g})" if d is not None else ""
                    lines.append(
                        f"  {yellow}~ {c.key}: {_fmt(c.old)} -> {_fmt(c.new)}{extra}{reset}"
                    )
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_text()


def _fmt(v: Any) -> str:
    """A value in at most 80 characters; a longer one keeps its head and its tail (two
    command lines that differ at the end must not print the same)."""
    if isinstance(v, str):
        s = v
    else:
        s = canonical.dumps(v).decode("utf-8") if not isinstance(v, (int, float)) else repr(v)
    return s if len(s) <= 80 else f"{s[:38]}...{s[-39:]}"


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (a metric that was NaN in both runs did not change),
    and ``True`` not equal to ``1`` (Python's ``==`` says they are)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) is not isinstance(b, bool):
        return False
    return bool(a == b)


def _cmp_maps(section: str, a: dict[str, Any], b: dict[str, Any], out: list[Change]) -> None:
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, _MISSING), b.get(k, _MISSING)
        if type(va) is type(vb) and va == vb:  # most keys (hundreds of packages): unchanged
            continue
        _cmp_one(section, k, va, vb, out)


def _cmp_one(section: str, k: str, va: Any, vb: Any, out: list[Change]) -> None:
    if va is _MISSING:
        out.append(Change(section, k, None, vb, kind="added"))
    elif vb is _MISSING:
        out.append(Change(section, k, va, None, kind="removed"))
    elif not _same(va, vb):
        out.append(Change(section, k, va, vb, kind="changed"))


def _cmp_values(
    a: dict[str, Any], b: dict[str, Any], out: list[Change], section: str = "params"
) -> None:
    """Values one by one; two configs (dicts) field by field, ``cfg.optim.lr``."""
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, _MISSING), b.get(k, _MISSING)
        if is_config(va) and is_config(vb):
            before = len(out)
            _cmp_maps(section, param_fields({k: va}), param_fields({k: vb}), out)
            if len(out) == before and not _same(va, vb):
                # fields whose dotted names clash ({"a.b": 1, "a": {"b": 2}}): as a whole
                out.append(Change(section, k, va, vb, kind="changed"))
        else:  # a scalar, a list, a stand-in, or a config on one side only: as a whole
            _cmp_one(section, k, va, vb, out)


#: a JSON value artifact up to this size is compared by its content, not its digest
SMALL_VALUE = 16 * 1024


def _small_value(read: Callable[[str], bytes], run: Run, section: str, name: str) -> Any:
    """The content of a run's input or output ``name`` when it is a small JSON value
    (``return`` of ``{"acc": 0.9}``); _MISSING when absent, larger, another format or
    unreadable (then the digests are compared)."""
    art = getattr(run, section).get(name)
    if art is None or art.kind != "value" or art.format != "json" or art.size > SMALL_VALUE:
        return _MISSING
    try:
        return canonical.loads(read(art.digest))
    except Exception:
        return _MISSING


def _digests(run: Run, section: str) -> dict[str, str]:
    """A run's inputs or outputs by name.  An input that is the stored value of the param of
    its name is left out: the params section shows what changed in it (each change once)."""
    arts = getattr(run, section)
    if section != "inputs":
        return {k: art.digest for k, art in arts.items()}
    params = run.params
    return {
        k: art.digest
        for k, art in arts.items()
        if not _is_param_value(params.get(k, _MISSING), art.kind, art.digest)
    }


def _is_param_value(param: Any, kind: str, digest: str) -> bool:
    """Whether an input artifact holds exactly the value recorded as the param of its name
    (inline, or behind a stand-in naming its digest)."""
    if param is _MISSING or kind != "value":
        return False
    if is_stand_in(param):
        return bool(param.get("digest") == digest)
    try:
        return digest_bytes(canonical.dumps(param), digest.partition(":")[0]) == digest
    except Exception:  # an algorithm this process does not know: show the input
        return False


def _modules(read: Callable[[str], bytes], run: Run) -> dict[str, str]:
    d = run.code.get("modules")
    if not d:
        return {}
    try:
        return dict(canonical.loads(read(d)))
    except LedgerError:
        return {}


def diff_runs(
    read: Callable[[str], bytes],
    a: Run,
    b: Run,
    *,
    env: Callable[[Run], dict[str, Any]] | None = None,
) -> RunDiff:
    """Compare two runs section by section; ``read`` gives the bytes of a stored object
    by digest (``Store.get``: small values and user-module records are compared by
    content); ``env`` gives a run's environment record (default ``Run.env``: a caller
    diffing many runs passes one that reads each environment object once)."""
    env_of = env if env is not None else _run_env
    out: list[Change] = []
    _cmp_values(a.params, b.params, out)
    _cmp_maps("metrics", a.metrics, b.metrics, out)
    for section in ("inputs", "outputs"):
        da = _digests(a, section)
        db = _digests(b, section)
        for k in sorted(set(da) | set(db)):
            va, vb = da.get(k, _MISSING), db.get(k, _MISSING)
            if va == vb:
                continue
            old, new = _small_value(read, a, section, k), _small_value(read, b, section, k)
            if old is not _MISSING and new is not _MISSING:
                # a small JSON value (a returned dict of scores): what changed in it
                before = len(out)
                _cmp_values({k: old}, {k: new}, out, section)
                if len(out) == before:  # other bytes that compare equal: 1 and 1.0
                    out.append(Change(section, k, old, new, kind="changed"))
            else:
                _cmp_one(section, k, va, vb, out)
    code_keys = ("qualname", "source_digest", "closure_digest", "module_digest", "file", "kind")
    ca = {k: v for k, v in a.code.items() if k in code_keys}
    cb = {k: v for k, v in b.code.items() if k in code_keys}
    if a.code.get("modules") != b.code.get("modules"):
        ca.update({f"module:{k}": v for k, v in _modules(read, a).items()})
        cb.update({f"module:{k}": v for k, v in _modules(read, b).items()})
    _cmp_maps("code", ca, cb, out)
    git_keys = ("commit", "branch", "remote", "dirty", "diff")
    ga = {k: v for k, v in (a.git or {}).items() if k in git_keys}
    gb = {k: v for k, v in (b.git or {}).items() if k in git_keys}
    _cmp_maps("git", ga, gb, out)
    rec_a, rec_b = a.record, b.record
    if rec_a.get("env") != rec_b.get("env"):
        ea, eb = env_of(a), env_of(b)
        for sec in ("packages", "env_vars"):  # maps of strings: equal as wholes in most diffs
            if ea.get(sec, {}) != eb.get(sec, {}):
                _cmp_maps(sec, ea.get(sec, {}), eb.get(sec, {}), out)
        _cmp_maps(
            "python", param_fields(ea.get("python", {})), param_fields(eb.get("python", {})), out
        )
        plat_a = param_fields({**ea.get("platform", {}), **_hw(ea)})
        plat_b = param_fields({**eb.get("platform", {}), **_hw(eb)})
        _cmp_maps("platform", plat_a, plat_b, out)
    kinds = (rec_a.get("kind"), rec_b.get("kind"))
    if kinds == ("script", "script") and "argv" not in (set(a.params) | set(b.params)):
        # a whole script run with `mlledger run`: its command line is its params (recorded
        # as params.argv, compared above, by runs that have it).  Any other run's argv
        # counts only through the params it became: a launcher's, a test runner's or a
        # notebook kernel's argv says nothing of the run
        _cmp_maps(
            "params",
            {"argv": (rec_a.get("process") or {}).get("argv")},
            {"argv": (rec_b.get("process") or {}).get("argv")},
            out,
        )
    order = {s: i for i, s in enumerate(SECTIONS)}
    out.sort(key=lambda c: order[c.section])
    return RunDiff(a.id, b.id, tuple(out))


def _run_env(run: Run) -> dict[str, Any]:
    return run.env


def _hw(env: dict[str, Any]) -> dict[str, Any]:
    host = env.get("host", {})
    return {
        "hostname": host.get("hostname"),
        "cpu": host.get("cpu"),
        "cpu_count": host.get("cpu_count"),
        "memory": host.get("memory"),
        "gpus": host.get("gpus"),
    }
