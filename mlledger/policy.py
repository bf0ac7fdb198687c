"""The team's rules, versioned in the store: ``policy/<seq:010d>.json``.

The policy is a :class:`~mlledger.store.history.History` like a ref's: each
change is a new entry, created once, sealed and linked to the one before, so a
change of the rules is itself on the audit trail (who, when, why).  Each entry
holds the whole policy after the change; the newest entry wins.  A policy the
store's ``mlledger.json`` was created with (wave 1's ``{"policy":
{"require_message": true}}``) lies under the history's.

Keys (each checked when set, so a bad rule is refused before anyone relies
on it):

``require_message``
    bool: every run needs a message.
``require_tags``
    tag names every run must carry.
``protect``
    ref-name patterns (``fnmatch``: ``model/*``): moving or rolling back such
    a ref needs a message and passing checks on the target's run; ``force``
    overrides and is recorded in the ref's entry.
``rates``
    what an hour of the machine costs (see :mod:`mlledger.cost`).
``checks``
    rules judging runs against a baseline (see :mod:`mlledger.checks`).
``alerts``
    where alerts go: sinks (see :mod:`mlledger.alerts`).

Secrets never go into the policy: a sink's URL or password is written as
``$ENV_VAR`` and read when an alert is sent.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from . import _settings, canonical
from .alerts.sinks import check_sink
from .cost import check_rates
from .errors import IntegrityError, LedgerWarning, PolicyError, UsageError
from .records import converter, utcnow
from .rules import check_rule
from .store.history import History
from .store.layout import POLICY

if TYPE_CHECKING:
    from .store import Store

__all__ = ["KEYS", "Policy", "PolicyEntry", "check_policy_value", "protected"]

#: how long a run start may rely on the policy it read last (seconds): a run start
#: costs no listing of ``policy/`` more often than this, and a change reaches running
#: processes within it
MAX_AGE = 2.0


@attrs.frozen
class PolicyEntry:
    """One change of the policy: never changed once written.

    ``policy`` is the whole policy after the change, ``changed`` the keys it set
    or removed; ``prev`` and ``seal`` are the audit chain's (see
    :mod:`mlledger.store.chain`).
    """

    seq: int
    at: _dt.datetime
    user: str
    host: str
    policy: dict[str, Any]
    changed: tuple[str, ...] = ()
    message: str | None = None
    prev: str | None = None
    seal: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = converter.unstructure(self)
        out["changed"] = list(self.changed)
        for key in ("prev", "seal"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyEntry:
        return converter.structure(data, cls)


# -- the keys and their checks --------------------------------------------------------


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise UsageError(f"policy {key} is true or false, not {value!r}: set {key}=true")


def _names(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(
            f"policy {key} is a list of names, not {value!r}: set {key}=team,owner "
            f"(or {key}=['team', 'owner'] in Python)"
        )
    return list(dict.fromkeys(value))


def _rates(key: str, value: Any) -> dict[str, Any]:
    return check_rates(value)


def _list_of(what: str, check: Callable[[Any, int], dict[str, Any]]) -> Callable[..., Any]:
    def checked(key: str, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise UsageError(
                f"policy {key} is a list of {what} (dicts), not {type(value).__qualname__}"
            )
        return [check(v, i) for i, v in enumerate(value)]

    return checked


#: every key the policy knows, and how a value of it is checked and normalized
KEYS: dict[str, Callable[[str, Any], Any]] = {
    "require_message": _bool,
    "require_tags": _names,
    "protect": _names,
    "rates": _rates,
    "checks": _list_of("check rules", check_rule),
    "alerts": _list_of("alert sinks", check_sink),
}


def check_policy_value(key: str, value: Any) -> Any:
    """``value`` checked and normalized for ``key``; UsageError naming the key otherwise."""
    if key not in KEYS:
        import difflib

        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"unknown policy key {key!r}: {hint}the keys are {', '.join(KEYS)}")
    return KEYS[key](key, value)


def protected(policy: dict[str, Any], ref: str) -> str | None:
    """The pattern of ``policy['protect']`` that ``ref`` matches, or None."""
    for pattern in policy.get("protect") or ():
        if fnmatch.fnmatchcase(ref, pattern):
            return str(pattern)
    return None


# -- the history ----------------------------------------------------------------------


class Policy:
    """The policy of one store: ``get``, ``set``, ``history`` (``ledger.policy``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._history = History(store, POLICY)
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"<Policy of {self.store.url}>"

    def _base(self) -> dict[str, Any]:
        """The policy ``mlledger.json`` was created with (checked as any other)."""
        base = self.store.config.get("policy") or {}
        out: dict[str, Any] = {}
        if isinstance(base, dict):
            for key, value in base.items():
                if key in KEYS:
                    try:
                        out[key] = check_policy_value(key, value)
                    except UsageError:
                        continue
        return out

    def _parse(self, seq: int, raw: bytes) -> PolicyEntry:
        try:
            doc = canonical.loads(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("policy"), dict):
                raise ValueError("not a policy entry")
            return PolicyEntry.from_json(doc)
        except Exception as e:
            raise IntegrityError(
                f"policy entry #{seq} ({self._history.key(seq)} in {self.store.url}) does not "
                f"parse ({e}): the store is damaged; restore that file from a backup, or set "
                "the policy again to move past it"
            ) from e

    def _newest(self) -> PolicyEntry | None:
        """The newest readable entry; a damaged newer one is warned about and passed over."""
        seqs = self._history.seqs()
        for seq in reversed(seqs):
            try:
                return self._parse(seq, self._history.read(seq))
            except IntegrityError as e:
                warnings.warn(f"mlledger: {e}", LedgerWarning, stacklevel=3)
        return None

    def _before(self, seq: int) -> PolicyEntry | None:
        """The entry ``seq`` will follow (``append`` has just listed the history): read
        directly, or, when it is damaged, the newest readable one before it."""
        if seq <= 1:
            return None
        try:
            return self._parse(seq - 1, self._history.read(seq - 1))
        except IntegrityError:
            return self._newest()

    def get(self) -> dict[str, Any]:
        """The policy in force, read fresh from the store: ``{}`` when none is set."""
        out = self._base()
        newest = self._newest()
        if newest is not None:
            out.update(newest.policy)
        with self._lock:
            self._cached = (time.monotonic(), out)
        return dict(out)

    def current(self, max_age: float = MAX_AGE) -> dict[str, Any]:
        """The policy, read again only when the copy in hand is older than ``max_age``
        seconds (what a run start asks: no listing of the store per run)."""
        got = self._cached
        if got is not None and time.monotonic() - got[0] < max_age:
            return got[1]
        return self.get()

    def set(self, message: str | None = None, **changes: Any) -> PolicyEntry:
        """Merge ``changes`` into the policy (a key set to None is removed) as one new
        entry, created once; returns it.  Every value is checked first: a bad one is
        refused and nothing is written."""
        if not changes:
            raise UsageError(
                "policy.set() needs at least one key to set: "
                f"policy.set(require_message=True, message='why'); the keys: {', '.join(KEYS)}"
            )
        if message is not None and not isinstance(message, str):
            raise UsageError(f"a policy change's message is a string, not {message!r}")
        checked = {k: (None if v is None else check_policy_value(k, v)) for k, v in changes.items()}
        user, host = _settings.user_name(), _settings.host_name()
        base = self._base()

        def build(seq: int) -> dict[str, Any]:
            newest = self._before(seq)
            policy = dict(base)
            if newest is not None:
                policy.update(newest.policy)
            for k, v in checked.items():
                if v is None:
                    policy.pop(k, None)
                else:
                    policy[k] = v
            return PolicyEntry(
                seq=seq,
                at=utcnow(),
                user=user,
                host=host,
                policy=policy,
                changed=tuple(checked),
                message=message,
            ).to_json()

        seq, data = self._history.append(build)
        entry = self._parse(seq, data)
        with self._lock:
            self._cached = (time.monotonic(), dict(entry.policy))
        return entry

    def history(self) -> list[PolicyEntry]:
        """Every change of the policy, oldest first (``[]`` when it was never set)."""
        return [self._parse(s, raw) for s, raw in self._history.read_all() if raw is not None]

    # -- what runs and ref moves ask ---------------------------------------------------
    def check_run(self, message: str | None, tags: dict[str, Any] | None) -> None:
        """Refuse (PolicyError) a run the policy does not allow: no message where one is
        required, a required tag missing."""
        policy = self.current()
        if not policy:
            return
        if policy.get("require_message") and not (isinstance(message, str) and message.strip()):
            raise PolicyError(
                f"the store at {self.store.url} requires a message on every run (policy "
                "require_message): pass message='why this run' (-m on the command line)"
            )
        required = policy.get("require_tags") or ()
        missing = [t for t in required if (tags or {}).get(t) in (None, "")]
        if missing:
            raise PolicyError(
                f"the store at {self.store.url} requires the tags {', '.join(required)} on "
                f"every run (policy require_tags); missing: {', '.join(missing)}: pass "
                f"tags={{{', '.join(repr(t) + ': ...' for t in missing)}}} "
                f"(--tag {missing[0]}=VALUE on the command line)"
            )
