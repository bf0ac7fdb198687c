"""The ``where`` language, compiled to parameterized SQL over the catalog.

    params.lr > 0.01 and metrics.loss < 0.5
    tags.team = 'cv' or name like 'train%'
    not (status in ('failed', 'incomplete'))
    metrics.loss.min <= 0.1 and started_at >= '2026-11-01'

Fields: ``params.X`` (``params.cfg.optim.lr`` for a field of a dict param:
dataclass, attrs and namedtuple params are dicts), ``metrics.X`` (last value;
``.min``, ``.max``, ``.last``, ``.count``), ``tags.X``, ``name``, ``status``,
``started_at``, ``ended_at``, ``user``, ``host``, ``id``, ``parent_id``,
``kind``, ``message``, ``resources.X`` (``wall_s``, ``cpu_user_s``,
``peak_rss_bytes``, ``gpu_model``...) and ``cost`` (``resources.cost``).
Operators ``= != < <= > >=``, ``in (...)``, ``not in (...)``, ``like``,
``and``, ``or``, ``not``, parentheses, ``is null`` / ``is not null``.  Strings
in single quotes (``''`` inside is a quote), numbers typed (``params.batch =
32`` does not match the string ``'32'``), ``true``/``false``.  A comparison
holds only for runs that have the field: ``params.opt != 'sgd'`` and
``params.opt not in ('sgd')`` skip runs without ``opt`` (``not params.opt =
'sgd'`` keeps them); a param recorded as None ``is null``.
Every value becomes a SQL parameter: no input can change the SQL's shape.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import QueryError

__all__ = [
    "ALIASES",
    "COLUMNS",
    "compile_driven",
    "compile_match",
    "compile_order",
    "compile_where",
    "driven_sql",
    "fields_named",
]

#: plain fields and their catalog columns
COLUMNS = {
    "name": "r.name",
    "status": "r.status",
    "started_at": "r.started_at",
    "ended_at": "r.ended_at",
    "user": "r.user",
    "host": "r.host",
    "id": "r.id",
    "parent_id": "r.parent_id",
    "kind": "r.kind",
    "message": "r.message",
}
_METRIC_STATS = {"last": "last", "min": "min", "max": "max", "count": "count"}
#: sections whose fields are rows of (key, value_num, value_text) in a table of that name
_KEYED = ("params", "tags", "resources")
#: short names of fields in a section: ``cost`` is ``resources.cost``
ALIASES = {"cost": "resources.cost"}
_OPS = ("<=", ">=", "!=", "<>", "=", "==", "<", ">")

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)(?![A-Za-z_])
  | (?P<str>'(?:[^']|'')*')
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "like", "true", "false", "null", "is"}
#: how deeply parentheses and ``not`` may nest (deeper input is refused, not a RecursionError)
MAX_DEPTH = 100
#: terms an and/or joins flat; longer chains nest as a balanced tree (SQLite's depth limit)
_FLAT_TERMS = 64
#: an in-list longer than this is one JSON parameter (``json_each``): no SQL variable limit
_JSON_IN_MIN = 64
#: integers SQLite stores exactly; larger ones compare as floats
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


class _Tok:
    __slots__ = ("kind", "pos", "text", "value")

    def __init__(self, kind: str, text: str, pos: int, value: Any = None) -> None:
        self.kind, self.text, self.pos, self.value = kind, text, pos, value


def _error(text: str, pos: int, message: str) -> QueryError:
    shown = "".join(" " if c in "\t\r\n\v\f" else c for c in text)  # keep the caret aligned
    return QueryError(f"{message} (column {pos + 1})\n  {shown}\n  {' ' * pos}^")


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            if text[pos] == "'":
                raise _error(
                    text, pos, "unterminated string: close it with ' (write '' for a quote)"
                )
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        assert kind is not None
        s = m.group()
        if kind == "num":
            v: Any = float(s) if any(c in s for c in ".eE") else int(s)
            if isinstance(v, int) and not _INT_MIN <= v <= _INT_MAX:
                v = float(v)  # beyond SQLite's integers: compare as a float, as stored values are
            toks.append(_Tok("value", s, pos, v))
        elif kind == "str":
            value = s[1:-1].replace("''", "'")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                raise _error(
                    text, pos + 1 + e.start, "this string is not valid text (a lone surrogate)"
                ) from None
            toks.append(_Tok("value", s, pos, value))
        elif kind == "ident":
            low = s.lower()
            if low in ("true", "false"):
                toks.append(_Tok("value", s, pos, low == "true"))
            elif low == "null":
                toks.append(_Tok("null", s, pos))
            elif low in _KEYWORDS:
                toks.append(_Tok(low, s, pos))
            else:
                toks.append(_Tok("ident", s, pos))
        elif kind != "ws":
            toks.append(_Tok(kind, s, pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


def _balanced(parts: list[str], op: str) -> str:
    """``parts`` joined by ``op`` as a balanced tree of parentheses.

    SQLite builds ``a OR b OR c ...`` as a chain one level deeper per term and
    refuses a chain over 1,000 deep ("Expression tree is too large"); a
    balanced tree is log2(n) deep, so any number of terms compiles.
    """
    if len(parts) == 1:
        return parts[0]
    if len(parts) <= _FLAT_TERMS:
        return "(" + f" {op} ".join(parts) + ")"
    mid = len(parts) // 2
    return f"({_balanced(parts[:mid], op)} {op} {_balanced(parts[mid:], op)})"


def _json_safe(v: Any) -> bool:
    """A value JSON carries to SQLite unchanged (not inf or nan: JSON has no such numbers)."""
    return not isinstance(v, float) or math.isfinite(v)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.args: list[Any] = []
        self.and_parts: dict[str, list[str]] = {}

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self, kind: str | None = None, what: str = "") -> _Tok:
        t = self.toks[self.i]
        if kind is not None and t.kind != kind:
            found = repr(t.text) if t.text else "the end"
            raise _error(self.text, t.pos, f"expected {what or kind}, found {found}")
        self.i += 1
        return t

    def parse(self) -> str:
        sql = self.or_expr()
        t = self.peek()
        if t.kind != "end":
            raise _error(
                self.text, t.pos, f"unexpected {t.text!r}: join conditions with 'and' or 'or'"
            )
        return sql

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while self.peek().kind == "or":
            self.take()
            parts.append(self.and_expr())
        return _balanced(parts, "OR")

    def and_expr(self) -> str:
        parts = [self.not_expr()]
        while self.peek().kind == "and":
            self.take()
            parts.append(self.not_expr())
        if len(parts) == 1:
            return parts[0]
        sql = _balanced(parts, "AND")
        self.and_parts[sql] = parts
        return sql

    def _nest(self, t: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(
                self.text, t.pos, f"nested more than {MAX_DEPTH} deep: simplify the expression"
            )

    def not_expr(self) -> str:
        t = self.peek()
        if t.kind == "not":
            self.take()
            self._nest(t)
            inner = self.not_expr()
            self.depth -= 1
            return f"(NOT {inner})"
        return self.primary()

    def primary(self) -> str:
        t = self.peek()
        if t.kind == "lp":
            self.take()
            self._nest(t)
            inner = self.or_expr()
            self.take("rp", "')'")
            self.depth -= 1
            return inner
        if t.kind != "ident":
            found = repr(t.text) if t.text else "the end"
            raise _error(
                self.text,
                t.pos,
                "expected a field such as params.lr, metrics.loss, tags.team or status, "
                f"found {found}",
            )
        return self.comparison()

    def comparison(self) -> str:
        field = self.take("ident")
        t = self.peek()
        negate = False
        if t.kind == "not":
            self.take()
            negate = True
            t = self.peek()
            if t.kind != "in":
                raise _error(self.text, t.pos, "expected 'in' after 'not'")
        if t.kind == "op":
            self.take()
            op = {"==": "=", "<>": "!="}.get(t.text, t.text)
            v = self.peek()
            if v.kind == "null":
                raise _error(self.text, v.pos, "compare with null using 'is null' / 'is not null'")
            value = self.take("value", "a number or a 'quoted string'")
            return self.field_sql(field, op, [value.value], t)
        if t.kind == "in":
            self.take()
            self.take("lp", "'(' after in")
            values = [self.take("value", "a number or a 'quoted string'").value]
            while self.peek().kind == "comma":
                self.take()
                values.append(self.take("value", "a number or a 'quoted string'").value)
            self.take("rp", "')' closing the in-list")
            return self.field_sql(field, "not in" if negate else "in", values, t)
        if t.kind == "like":
            self.take()
            pat = self.take("value", "a 'quoted pattern'")
            if not isinstance(pat.value, str):
                raise _error(self.text, pat.pos, "like takes a 'quoted pattern' with % and _")
            return self.field_sql(field, "like", [pat.value], t)
        if t.kind == "is":
            self.take()
            neg = False
            if self.peek().kind == "not":
                self.take()
                neg = True
            self.take("null", "null")
            return self.field_sql(field, "is not null" if neg else "is null", [], t)
        found = repr(t.text) if t.text else "the end"
        raise _error(
            self.text,
            t.pos,
            f"expected an operator (= != < <= > >= in like) after {field.text}, found {found}",
        )

    # -- field compilation -------------------------------------------------------
    @staticmethod
    def _cmp(col: str, op: str, values: list[Any], args: list[Any]) -> str:
        if op in ("in", "not in"):
            if len(values) > _JSON_IN_MIN and all(_json_safe(v) for v in values):
                # one parameter, whatever the list's length: SQLite caps variables per
                # statement (32,766 on most builds, 999 on old ones)
                args.append(json.dumps(values))
                return f"{col} {op.upper()} (SELECT value FROM json_each(?))"
            args.extend(values)
            return f"{col} {op.upper()} ({', '.join('?' * len(values))})"
        if op == "like":
            args.append(values[0])
            return f"{col} LIKE ?"
        if op in ("is null", "is not null"):
            return f"{col} {op.upper()}"
        args.append(values[0])
        return f"{col} {op} ?"

    def field_sql(self, field: _Tok, op: str, values: list[Any], op_tok: _Tok) -> str:
        name = ALIASES.get(field.text, field.text)
        section, _, rest = name.partition(".")
        args = self.args
        if section in COLUMNS and not rest:
            return self._cmp(COLUMNS[section], op, values, args)
        if section in _KEYED and rest:
            table = section
            args.append(rest)
            if op in ("is null", "is not null"):
                # a param recorded as None is null, as is a missing one
                sub = (
                    f"r.id IN (SELECT run_id FROM {table} WHERE key = ? "
                    "AND (value_num IS NOT NULL OR value_text IS NOT NULL))"
                )
                return sub if op == "is not null" else f"(NOT {sub})"
            if op == "like":
                c = self._cmp("value_text", "like", values, args)
                return f"r.id IN (SELECT run_id FROM {table} WHERE key = ? AND {c})"
            nums = [v for v in values if isinstance(v, (int, float))]
            texts = [v for v in values if isinstance(v, str)]
            if op in ("!=", "not in"):
                # the run has the field, and its value equals none of these
                # (a string is never equal to a number): as 'not (x = v)'
                # for runs that have x, so '!=' and 'not in' agree
                eq: list[str] = []
                for col, vals in (("value_num", nums), ("value_text", texts)):
                    if vals:
                        eq.append(f"COALESCE({self._cmp(col, 'in', vals, args)}, 0)")
                return (
                    f"r.id IN (SELECT run_id FROM {table} WHERE key = ? "
                    f"AND (value_num IS NOT NULL OR value_text IS NOT NULL) "
                    f"AND NOT ({' OR '.join(eq)}))"
                )
            conds: list[str] = []
            for col, vals in (("value_num", nums), ("value_text", texts)):
                if vals:
                    conds.append(self._cmp(col, op, vals, args))
            inner = conds[0] if len(conds) == 1 else "(" + " OR ".join(conds) + ")"
            return f"r.id IN (SELECT run_id FROM {table} WHERE key = ? AND {inner})"
        if section == "metrics" and rest:
            key, stat = rest, "last"
            head, _, last = rest.rpartition(".")
            if head and last in _METRIC_STATS:
                key, stat = head, _METRIC_STATS[last]
            if op in ("is null", "is not null"):
                args.append(key)
                sub = f'r.id IN (SELECT run_id FROM metrics WHERE key = ? AND "{stat}" IS NOT NULL)'
                return sub if op == "is not null" else f"(NOT {sub})"
            for v in values:
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise _error(
                        self.text, op_tok.pos, f"metrics are numbers: compare {name} with a number"
                    )
            args.append(key)
            c = self._cmp(f'"{stat}"', op, values, args)
            return f"r.id IN (SELECT run_id FROM metrics WHERE key = ? AND {c})"
        known = ", ".join(
            ["params.X", "metrics.X[.min|.max]", "tags.X", "resources.X", "cost", *COLUMNS]
        )
        raise _error(self.text, field.pos, f"unknown field {name!r}: use one of {known}")


def compile_where(text: str) -> tuple[str, list[Any]]:
    """``(sql, args)`` for a where expression over the catalog's ``runs r``."""
    if not isinstance(text, str):
        raise QueryError(
            f'where= takes a string such as "params.lr > 0.01", not {type(text).__name__}'
        )
    if not text.strip():
        return "1", []
    p = _Parser(text)
    sql = p.parse()
    return sql, p.args


_IN_RUN = re.compile(r"r\.id IN \(SELECT run_id FROM (params|tags|metrics) WHERE ")


def compile_match(text: str) -> tuple[str, list[Any]]:
    """:func:`compile_where` for judging ONE run (``r.id = ?`` beside it): each condition on
    params, tags or metrics becomes a lookup of that run's rows (``EXISTS``, by the
    ``(key, run_id)`` indexes) instead of the set of every run that matches it."""
    sql, args = compile_where(text)
    return _IN_RUN.sub(r"EXISTS (SELECT 1 FROM \1 WHERE run_id = r.id AND ", sql), args


_SIMPLE = re.compile(
    r"^r\.id IN \(SELECT run_id FROM (params|tags|metrics|resources) WHERE (key = \?.*)\)$", re.S
)


#: a condition matching fewer rows than this is better served by its value index
DRIVE_MIN_ROWS = 5000
#: how many of the newest runs having a condition's key a driven plan samples to pick its scan
DRIVE_SAMPLE = 1000


def compile_driven(text: str) -> tuple[list[tuple[str, str, list[Any]]], list[Any]] | None:
    """The parts of a where that is one condition, or an ``and`` of conditions, on
    params/tags/metrics: ``([(table, condition, args), ...], all args)``; None otherwise.

    :func:`driven_sql` turns them into a plan that scans one condition's index in
    run id order (newest first, no sort, no join) and checks the others by primary
    key: several times faster than the general plan when many runs match.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    p = _Parser(text)
    sql = p.parse()
    parts = p.and_parts.get(sql, [sql])
    plan: list[tuple[str, str, list[Any]]] = []
    i = 0
    for part in parts:
        m = _SIMPLE.match(part)
        if m is None or "r.id" in m.group(2):
            return None
        n = m.group(2).count("?")  # every value is a parameter: no other '?' in the SQL
        plan.append((m.group(1), m.group(2), p.args[i : i + n]))
        i += n
    return plan, p.args


def driven_sql(plan: list[tuple[str, str, list[Any]]], first: int) -> tuple[str, list[Any]]:
    """SQL scanning condition ``first``'s index and checking the others by key."""
    table, inner, args = plan[first]
    q = f"SELECT d.run_id FROM {table} d INDEXED BY {table}_key_run WHERE {inner}"
    out = list(args)
    for j, (t, cond, a) in enumerate(plan):
        if j != first:
            q += f" AND EXISTS (SELECT 1 FROM {t} x WHERE x.run_id = d.run_id AND {cond})"
            out.extend(a)
    return q + " ORDER BY d.run_id DESC", out


def compile_order(spec: str) -> tuple[str, str, list[Any]]:
    """``(join, order, args)`` for an ``order_by`` such as ``-metrics.accuracy``."""
    if not isinstance(spec, str) or not spec.strip():
        raise QueryError("order_by takes a field such as 'started_at' or '-metrics.accuracy'")
    desc = spec.startswith("-")
    name = spec.lstrip("+-").strip()
    name = ALIASES.get(name, name)
    direction = "DESC" if desc else "ASC"
    section, _, rest = name.partition(".")
    if section in COLUMNS and not rest:
        return "", f"{COLUMNS[section]} {direction}, r.id DESC", []
    if section == "metrics" and rest:
        key, stat = rest, "last"
        head, _, last = rest.rpartition(".")
        if head and last in _METRIC_STATS:
            key, stat = head, _METRIC_STATS[last]
        join = "LEFT JOIN metrics o ON o.run_id = r.id AND o.key = ?"
        return join, f'o."{stat}" IS NULL, o."{stat}" {direction}, r.id DESC', [key]
    if section in _KEYED and rest:
        table = section
        join = f"LEFT JOIN {table} o ON o.run_id = r.id AND o.key = ?"
        return (
            join,
            f"o.value_num IS NULL AND o.value_text IS NULL, o.value_num {direction}, "
            f"o.value_text {direction}, r.id DESC",
            [rest],
        )
    raise QueryError(
        f"cannot order by {spec!r}: use a field such as started_at, name, "
        "metrics.X, params.X, resources.X or cost, with '-' in front for descending"
    )


def fields_named(where: str | None = None, order_by: str | None = None) -> list[tuple[str, str]]:
    """The ``(section, key)`` of every params, metrics and tags field a ``where`` and an
    ``order_by`` name, in order, once each (a metric's ``.min``/``.max``... left off):
    what to check when a query matches nothing."""
    names: list[str] = []
    if where:
        names += [t.text for t in _tokenize(where) if t.kind == "ident"]
    if order_by:
        names.append(order_by.lstrip("+-").strip())
    out: list[tuple[str, str]] = []
    for name in names:
        section, _, key = ALIASES.get(name, name).partition(".")
        if section not in ("params", "metrics", "tags", "resources") or not key:
            continue
        if section == "metrics":
            head, _, last = key.rpartition(".")
            if head and last in _METRIC_STATS:
                key = head
        if (section, key) not in out:
            out.append((section, key))
    return out
