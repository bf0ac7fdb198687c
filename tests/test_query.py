"""The where language and order_by: every field and operator, errors that point, no injection."""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import re
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from helpers.ledgers import FAST, clear_memory_root, fast_ledger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlledger.catalog.index as catalog_mod
import mlledger.query as query_mod
from mlledger import Ledger
from mlledger.errors import QueryError, UsageError
from mlledger.query import MAX_DEPTH, compile_order, compile_where, fields_named

HYPOTHESIS = settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


# -- a zoo of runs ---------------------------------------------------------------------


@dataclass
class Zoo:
    """Five runs with known params, tags, metrics, names and statuses (ids by label)."""

    ledger: Ledger
    ids: dict[str, str]

    def where(self, text: str, **kwargs: Any) -> list[str]:
        """The labels of the runs a query matches, in result order."""
        back = {v: k for k, v in self.ids.items()}
        return [back[i] for i in self.ledger.runs(where=text, **kwargs).ids]

    def labels(self, **kwargs: Any) -> list[str]:
        back = {v: k for k, v in self.ids.items()}
        return [back[i] for i in self.ledger.runs(**kwargs).ids]


ZOO_RUNS: list[dict[str, Any]] = [
    {"label": "r1", "name": "train",
     "params": {"lr": 0.1, "batch": 32, "opt": "adam", "flag": True, "note": "it's"},
     "tags": {"team": "cv"}, "loss": [0.9, 0.4, 0.5], "acc": [0.7]},
    {"label": "r2", "name": "train",
     "params": {"lr": 0.01, "batch": 64, "opt": "sgd", "flag": False, "seed": 7},
     "tags": {"team": "nlp"}, "loss": [0.3], "acc": [0.9]},
    {"label": "r3", "name": "eval", "params": {"lr": 1, "opt": "adam", "seed": None},
     "tags": {}, "loss": [], "acc": [0.6, 0.8]},
    {"label": "r4", "name": "train-big", "params": {"lr": 0.5}, "tags": {"team": "cv", "prio": "1"},
     "loss": [], "acc": [], "fail": True},
    {"label": "r5", "name": "prep", "params": {"batch": "32"}, "tags": {}, "loss": [], "acc": []},
]


def fill(ledger: Ledger, specs: list[dict[str, Any]]) -> dict[str, str]:
    """Run one ``ledger.run()`` block per spec; returns run ids by label."""
    ids = {}
    for spec in specs:
        with contextlib.suppress(RuntimeError), ledger.run(
            spec["name"], params=spec["params"], tags=spec["tags"]
        ) as run:
            ids[spec["label"]] = run.id
            for step, v in enumerate(spec.get("loss", [])):
                run.log(step=step, loss=v)
            for v in spec.get("acc", []):
                run.log(acc=v)
            for k, values in spec.get("metrics", {}).items():
                for v in values:
                    run.log(**{k: v})
            if spec.get("fail"):
                raise RuntimeError("this run fails")
    return ids


@pytest.fixture
def zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Zoo]:
    """The zoo of five runs (on a memory store: the catalog is the same SQLite for every store)."""
    monkeypatch.chdir(tmp_path)
    with fast_ledger("memory", tmp_path) as ledger:
        yield Zoo(ledger, fill(ledger, ZOO_RUNS))


@pytest.mark.parametrize("kind", FAST)
def test_zoo_queries_agree_on_memory_and_local_stores(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same runs give the same answers whichever store holds them."""
    monkeypatch.chdir(tmp_path)
    with fast_ledger(kind, tmp_path) as ledger:
        zoo = Zoo(ledger, fill(ledger, ZOO_RUNS))
        assert zoo.where("params.opt = 'adam' and metrics.acc > 0.65") == ["r3", "r1"]
        assert zoo.labels(order_by="-metrics.loss", limit=2) == ["r1", "r2"]


def test_runs_come_newest_first_by_default(zoo: Zoo) -> None:
    """Without order_by, runs() lists the newest run first (ids increase within a process)."""
    assert zoo.labels() == ["r5", "r4", "r3", "r2", "r1"]
    assert zoo.where("") == ["r5", "r4", "r3", "r2", "r1"]
    assert zoo.ledger.get(zoo.ids["r4"]).status == "failed"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        # params: numbers are typed, strings quoted, booleans
        ("params.lr > 0.05", {"r1", "r3", "r4"}),
        ("params.lr >= 0.5", {"r3", "r4"}),
        ("params.lr < 0.1", {"r2"}),
        ("params.lr <= 0.1", {"r1", "r2"}),
        ("params.lr = 1", {"r3"}),
        ("params.lr == 1.0", {"r3"}),
        ("params.lr != 0.1", {"r2", "r3", "r4"}),
        ("params.lr <> 0.1", {"r2", "r3", "r4"}),
        ("params.lr > 1e-3 and params.lr < 2E-2", {"r2"}),
        ("params.batch = 32", {"r1"}),
        ("params.batch = '32'", {"r5"}),
        ("params.opt = 'adam'", {"r1", "r3"}),
        ("params.opt != 'adam'", {"r2"}),
        ("params.opt > 'b'", {"r2"}),
        ("params.note = 'it''s'", {"r1"}),
        ("params.flag = true", {"r1"}),
        ("params.flag = false", {"r2"}),
        ("params.flag != true", {"r2"}),
        ("params.flag = TRUE", {"r1"}),
        # in / not in: runs without the field match neither
        ("params.opt in ('adam', 'rmsprop')", {"r1", "r3"}),
        ("params.opt not in ('sgd')", {"r1", "r3"}),
        ("params.lr in (0.1, 1)", {"r1", "r3"}),
        ("params.lr not in (0.1, 1)", {"r2", "r4"}),
        ("params.batch in (32, '32')", {"r1", "r5"}),
        ("params.batch not in (64, '32')", {"r1"}),
        ("not params.opt in ('sgd')", {"r1", "r3", "r4", "r5"}),
        ("not params.opt = 'sgd'", {"r1", "r3", "r4", "r5"}),
        # like: % and _, case-insensitive like SQL
        ("params.opt like 'a%'", {"r1", "r3"}),
        ("params.opt like '_gd'", {"r2"}),
        ("params.opt like 'ADAM'", {"r1", "r3"}),
        # is null: missing or recorded as None
        ("params.seed is null", {"r1", "r3", "r4", "r5"}),
        ("params.seed is not null", {"r2"}),
        ("params.nothing is null", {"r1", "r2", "r3", "r4", "r5"}),
        # metrics: last value, .min, .max, .last, .count
        ("metrics.loss < 0.45", {"r2"}),
        ("metrics.loss = 0.5", {"r1"}),
        ("metrics.loss.last = 0.5", {"r1"}),
        ("metrics.loss.min <= 0.4", {"r1", "r2"}),
        ("metrics.loss.max >= 0.9", {"r1"}),
        ("metrics.loss.count = 3", {"r1"}),
        ("metrics.acc > 0.75", {"r2", "r3"}),
        ("metrics.acc.min < 0.65", {"r3"}),
        ("metrics.acc in (0.7, 0.8)", {"r1", "r3"}),
        ("metrics.acc not in (0.7, 0.8)", {"r2"}),
        ("metrics.acc is null", {"r4", "r5"}),
        ("metrics.loss is not null", {"r1", "r2"}),
        ("metrics.loss != 0.5", {"r2"}),
        # tags: strings, and numbers when they read as one
        ("tags.team = 'cv'", {"r1", "r4"}),
        ("tags.team in ('cv', 'nlp')", {"r1", "r2", "r4"}),
        ("tags.team like 'n%'", {"r2"}),
        ("tags.team != 'cv'", {"r2"}),
        ("tags.prio = 1", {"r4"}),
        ("tags.prio = '1'", {"r4"}),
        ("tags.team is null", {"r3", "r5"}),
        # plain columns
        ("name = 'train'", {"r1", "r2"}),
        ("name != 'train'", {"r3", "r4", "r5"}),
        ("name like 'train%'", {"r1", "r2", "r4"}),
        ("name in ('eval', 'prep')", {"r3", "r5"}),
        ("name not in ('eval', 'prep')", {"r1", "r2", "r4"}),
        ("status = 'failed'", {"r4"}),
        ("status in ('finished')", {"r1", "r2", "r3", "r5"}),
        ("status != 'finished'", {"r4"}),
        ("host like '%'", {"r1", "r2", "r3", "r4", "r5"}),
        ("user = 'nobody-at-all'", set()),
        ("parent_id is null", {"r1", "r2", "r3", "r4", "r5"}),
        ("ended_at is not null", {"r1", "r2", "r3", "r4", "r5"}),
        ("started_at > '2000-01-01'", {"r1", "r2", "r3", "r4", "r5"}),
        ("started_at < '2000-01-01'", set()),
        # and / or / not / parentheses, keywords in any case
        ("name = 'train' and params.lr < 0.1", {"r2"}),
        ("name = 'eval' or tags.team = 'nlp'", {"r2", "r3"}),
        ("(name = 'train' or name = 'eval') and not params.opt = 'sgd'", {"r1", "r3"}),
        ("name = 'train' or name = 'eval' and params.lr = 1", {"r1", "r2", "r3"}),
        ("(name = 'train' or name = 'eval') and params.lr = 1", {"r3"}),
        ("not (status = 'failed' or name = 'prep')", {"r1", "r2", "r3"}),
        ("not not name = 'prep'", {"r5"}),
        ("name = 'prep' AND NOT status = 'failed' Or name = 'eval'", {"r3", "r5"}),
        ("((((name = 'prep'))))", {"r5"}),
    ],
)
def test_where_field_and_operator(zoo: Zoo, where: str, expected: set[str]) -> None:
    """Each field and operator of the where language selects exactly the runs it should."""
    assert set(zoo.where(where)) == expected


def test_user_host_and_started_at_match_the_recording_machine(zoo: Zoo) -> None:
    """user and host are who and where the run ran; started_at compares as ISO text."""
    user = zoo.ledger.get(zoo.ids["r1"]).user
    host = zoo.ledger.get(zoo.ids["r1"]).host
    assert user == getpass.getuser()
    assert host == socket.gethostname()
    assert set(zoo.where(f"user = '{user}'")) == set(zoo.ids)
    assert set(zoo.where(f"host = '{host}' and user in ('{user}')")) == set(zoo.ids)
    r3 = zoo.ledger.get(zoo.ids["r3"])
    stamp = r3._record["started_at"]
    assert zoo.where(f"started_at >= '{stamp}'") == ["r5", "r4", "r3"]
    assert zoo.where(f"started_at < '{stamp}'") == ["r2", "r1"]


def test_name_status_and_where_combine(zoo: Zoo) -> None:
    """name= and status= filter too, together with where (a list of statuses is allowed)."""
    assert zoo.labels(name="train") == ["r2", "r1"]
    assert zoo.labels(status="failed") == ["r4"]
    assert zoo.labels(status=["failed", "finished"]) == ["r5", "r4", "r3", "r2", "r1"]
    assert zoo.labels(name="train", where="params.lr > 0.05") == ["r1"]
    assert zoo.labels(name="nope") == []


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("metrics.loss", ["r2", "r1", "r5", "r4", "r3"]),
        ("-metrics.loss", ["r1", "r2", "r5", "r4", "r3"]),
        ("metrics.loss.min", ["r2", "r1", "r5", "r4", "r3"]),
        ("-metrics.acc.max", ["r2", "r3", "r1", "r5", "r4"]),
        ("metrics.acc.min", ["r3", "r1", "r2", "r5", "r4"]),
        ("params.lr", ["r2", "r1", "r4", "r3", "r5"]),
        ("-params.lr", ["r3", "r4", "r1", "r2", "r5"]),
        ("+params.lr", ["r2", "r1", "r4", "r3", "r5"]),
        ("params.opt", ["r3", "r1", "r2", "r5", "r4"]),
        ("-params.opt", ["r2", "r3", "r1", "r5", "r4"]),
        ("tags.team", ["r4", "r1", "r2", "r5", "r3"]),
        ("name", ["r3", "r5", "r2", "r1", "r4"]),
        ("-name", ["r4", "r2", "r1", "r5", "r3"]),
        ("started_at", ["r1", "r2", "r3", "r4", "r5"]),
        ("-started_at", ["r5", "r4", "r3", "r2", "r1"]),
        ("status", ["r4", "r5", "r3", "r2", "r1"]),
        ("id", ["r1", "r2", "r3", "r4", "r5"]),
    ],
)
def test_order_by(zoo: Zoo, order_by: str, expected: list[str]) -> None:
    """order_by sorts ascending, or descending with '-'; runs without the field come last."""
    assert zoo.labels(order_by=order_by) == expected


@dataclass
class Optim:
    name: str
    lr: float


@dataclass
class TrainConfig:
    optim: Optim
    layers: list[int]
    dropout: float | None = None


def test_fields_of_dict_and_config_params_are_queried_by_dotted_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataclass or dict param is reached field by field: params.cfg.optim.lr, in where
    and order_by; a list field is its JSON text; a param literally named "cfg.layers"
    wins over the field of that name."""
    monkeypatch.chdir(tmp_path)
    with fast_ledger("memory", tmp_path) as ledger:

        @ledger.tracked
        def train(cfg: TrainConfig) -> None:
            return None

        train(TrainConfig(Optim("adam", 0.01), [64, 64]))
        train(TrainConfig(Optim("sgd", 0.1), [128], dropout=0.5))
        with ledger.run("dict", params={"cfg": {"optim": {"lr": 0.05}}, "cfg.layers": "two"}):
            pass
        names = {r.id: r.params["cfg"]["optim"].get("name", "dict") for r in ledger.runs()}

        def where(text: str, **kw: Any) -> list[str]:
            return [names[i] for i in ledger.runs(where=text, **kw).ids]

        assert set(where("params.cfg.optim.lr > 0.02")) == {"sgd", "dict"}
        assert where("params.cfg.optim.name = 'adam'") == ["adam"]
        assert where("params.cfg.dropout is null") == ["dict", "adam"]
        assert where("params.cfg.layers = '[64,64]'") == ["adam"]
        assert where("params.cfg.layers = 'two'") == ["dict"]
        assert where("params.cfg.optim like '%sgd%'") == ["sgd"]  # a dict field: its JSON
        assert where("params.cfg.optim.lr >= 0", order_by="-params.cfg.optim.lr") == [
            "sgd", "dict", "adam"]
        with mock.patch.object(catalog_mod, "DRIVE_MIN_ROWS", 0):  # the driven plan too
            assert set(where("params.cfg.optim.lr > 0.02 and params.cfg.optim.lr < 1")) == {
                "sgd", "dict"}


def test_limit_cuts_the_ordered_result(zoo: Zoo) -> None:
    """limit keeps the first N of the ordered (or newest-first) result."""
    assert zoo.labels(limit=2) == ["r5", "r4"]
    assert zoo.labels(order_by="-metrics.acc", limit=1) == ["r2"]
    assert zoo.labels(where="name = 'train'", order_by="params.lr", limit=1) == ["r2"]
    assert zoo.labels(limit=0) == []
    assert zoo.labels(limit=100) == ["r5", "r4", "r3", "r2", "r1"]
    for bad in (-1, 1.5, "2"):
        with pytest.raises(UsageError):
            zoo.ledger.runs(limit=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["-", "+", " ", "bogus", "metrics.", "params", "-tags", "metrics"])
def test_bad_order_by_is_a_query_error(zoo: Zoo, bad: str) -> None:
    """An order_by that names no field raises QueryError saying what to write."""
    with pytest.raises(QueryError) as err:
        zoo.ledger.runs(order_by=bad)
    assert isinstance(err.value, ValueError)
    assert "metrics.X" in str(err.value) or "such as" in str(err.value)


# -- errors point at the column ---------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "column", "words"),
    [
        ("params.lr >", 12, "expected a number"),
        ("params.lr > 'abc", 13, "unterminated string"),
        ("bogus = 1", 1, "unknown field 'bogus'"),
        ("params = 1", 1, "unknown field"),
        ("params.lr = 1 params.x = 2", 15, "join conditions with 'and' or 'or'"),
        ("metrics.loss = 'low'", 14, "metrics are numbers"),
        ("metrics.loss = true", 14, "metrics are numbers"),
        ("params.lr ~ 1", 11, "unexpected character '~'"),
        ("(params.lr = 1", 15, "expected ')'"),
        ("name like 5", 11, "like takes a 'quoted pattern'"),
        ("params.x = null", 12, "is null"),
        ("params.x not like 'a'", 14, "expected 'in' after 'not'"),
        ("params.lr in 1", 14, "'(' after in"),
        ("params.lr in (1, 2", 19, "closing the in-list"),
        ("params.lr = 1 and", 18, "expected a field"),
        ("params.lr 1", 11, "expected an operator"),
        ("and name = 'x'", 1, "expected a field"),
        ("name = 'a' or or name = 'b'", 15, "expected a field"),
        ("params.x is 1", 13, "expected null"),
        ("name = 'x')", 11, "unexpected ')'"),
        ("name = 1abc", 8, "unexpected character '1'"),
        ("name = 'x' ; drop table runs", 12, "unexpected character ';'"),
    ],
)
def test_mistake_points_at_the_column(zoo: Zoo, where: str, column: int, words: str) -> None:
    """A bad where raises QueryError naming the column, with a caret under the spot."""
    with pytest.raises(QueryError) as err:
        zoo.ledger.runs(where=where)
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert words in msg
    assert f"(column {column})" in msg
    lines = msg.splitlines()
    assert lines[1] == f"  {where}"
    assert lines[2] == "  " + " " * (column - 1) + "^"


def test_caret_stays_aligned_under_tabs_and_newlines() -> None:
    """Whitespace that is not a space is shown as one, so the caret still lines up."""
    where = "name = 'a'\n\tand ~"
    with pytest.raises(QueryError) as err:
        compile_where(where)
    lines = str(err.value).splitlines()
    assert lines[1] == "  name = 'a'  and ~"
    assert lines[2].index("^") == lines[1].index("~")


def test_where_must_be_a_string() -> None:
    """A non-string where raises QueryError, not a TypeError from deep inside."""
    with pytest.raises(QueryError):
        compile_where(42)  # type: ignore[arg-type]


def test_deep_nesting_is_refused_not_a_crash() -> None:
    """Parentheses or nots nested beyond MAX_DEPTH raise QueryError, never RecursionError."""
    ok = "(" * MAX_DEPTH + "name = 'a'" + ")" * MAX_DEPTH
    compile_where(ok)
    for deep in ("(" * 5000 + "name = 'a'" + ")" * 5000, "not " * 5000 + "name = 'a'"):
        with pytest.raises(QueryError) as err:
            compile_where(deep)
        assert "nested" in str(err.value)


def test_huge_numbers_query_without_overflow(zoo: Zoo) -> None:
    """Integers beyond SQLite's range compare as floats instead of overflowing at execution."""
    assert zoo.where("params.lr < 99999999999999999999999999") == ["r4", "r3", "r2", "r1"]
    assert zoo.where("params.lr > -99999999999999999999999999") == ["r4", "r3", "r2", "r1"]
    assert zoo.where("params.lr > 1e308") == []


def test_lone_surrogate_in_a_string_is_a_query_error() -> None:
    """A string that is not valid text raises QueryError at compile time, pointing at it."""
    with pytest.raises(QueryError) as err:
        compile_where("name = 'ab\ud800'")
    assert "(column 11)" in str(err.value)


def test_values_become_parameters() -> None:
    """compile_where turns every literal into a ? parameter, keys included."""
    sql, args = compile_where("params.lr > 0.01 and tags.team = 'cv' or name like 't%'")
    assert "0.01" not in sql
    assert "'cv'" not in sql
    assert "t%" not in sql
    assert "team" not in sql
    assert args == ["lr", 0.01, "team", "cv", "t%"]
    join, order, oargs = compile_order("-metrics.val_loss.min")
    assert "val_loss" not in join + order
    assert oargs == ["val_loss"]
    assert "DESC" in order
    assert '"min"' in order


# -- property tests ------------------------------------------------------------------------

FIELDS = ["params.lr", "params.x", "tags.team", "metrics.loss", "metrics.loss.min", "name",
          "status", "started_at", "user", "host"]
TOKENS = [*FIELDS, "and", "or", "not", "in", "not in", "like", "is", "null", "is not null",
          "true", "false", "(", ")", ",", "=", "!=", "<", "<=", ">", ">=", "==", "<>",
          "'a'", "''''", "'", "1", "-2.5", "1e3", ".5", "+", "-", ";", "--", "\"", "%", "*"]


@HYPOTHESIS
@given(st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join),
    st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=10).map("".join),
))
def test_any_text_compiles_or_raises_query_error(text: str) -> None:
    """Random text either compiles (to SQL sqlite accepts) or raises QueryError, nothing else."""
    try:
        sql, args = compile_where(text)
    except QueryError as e:
        message = str(e)
    else:
        message = ""
    if message:
        assert "(column " in message
        return
    assert sql.count("?") == len(args)
    db = sqlite3.connect(":memory:")
    db.executescript(
        "CREATE TABLE runs (id, name, status, kind, started_at, ended_at, parent_id, user, host,"
        " message); CREATE TABLE params (run_id, key, value_num, value_text);"
        " CREATE TABLE tags (run_id, key, value_num, value_text);"
        ' CREATE TABLE metrics (run_id, key, "last", "min", "max", step, "count");'
    )
    db.execute(f"SELECT r.id FROM runs r WHERE {sql}", args).fetchall()


# An expression tree: ("cmp", field, op, values) | ("null", field, negated)
# | ("and"|"or", left, right) | ("not", inner).  Leaves hold typed literal slots.
Expr = tuple[Any, ...]

CMP_OPS = ["=", "!=", "<", "<=", ">", ">="]


def render(e: Expr) -> str:
    kind = e[0]
    if kind == "cmp":
        _, field, op, values = e
        lits = [literal(v) for v in values]
        if op in ("in", "not in"):
            return f"{field} {op} ({', '.join(lits)})"
        return f"{field} {op} {lits[0]}"
    if kind == "null":
        return f"{e[1]} is {'not ' if e[2] else ''}null"
    if kind == "not":
        return f"not ({render(e[1])})"
    return f"({render(e[1])}) {kind} ({render(e[2])})"


def literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def exprs(fields: st.SearchStrategy[str], texts: st.SearchStrategy[str],
          numbers: st.SearchStrategy[Any]) -> st.SearchStrategy[Expr]:
    """Expression trees over ``fields`` with literals from ``texts`` and ``numbers``."""

    @st.composite
    def leaf(draw: st.DrawFn) -> Expr:
        field = draw(fields)
        metric = field.startswith("metrics.")
        column = "." not in field
        if draw(st.integers(0, 9)) == 0:
            return ("null", field, draw(st.booleans()))
        value = numbers if metric else texts if column else st.one_of(
            numbers, texts, st.booleans())
        op = draw(st.sampled_from([*CMP_OPS, "in", "not in", "like"]))
        if op == "like":
            if metric:
                op = "="
            else:
                return ("cmp", field, "like", [draw(texts)])
        if op in ("in", "not in"):
            return ("cmp", field, op, draw(st.lists(value, min_size=1, max_size=3)))
        return ("cmp", field, op, [draw(value)])

    return st.recursive(
        leaf(),
        lambda inner: st.one_of(
            st.tuples(st.sampled_from(["and", "or"]), inner, inner),
            st.tuples(st.just("not"), inner),
        ),
        max_leaves=6,
    )


MARK = "\u00a7"  # no SQL the compiler writes contains it
KEYS = st.from_regex(r"zq[A-Za-z0-9_]{0,6}", fullmatch=True)


@st.composite
def hostile_fields(draw: st.DrawFn) -> str:
    section = draw(st.sampled_from(["params", "tags", "metrics", "column"]))
    if section == "column":
        return draw(st.sampled_from(["name", "status", "user", "host", "started_at"]))
    field = f"{section}.{draw(KEYS)}"
    if section == "metrics" and draw(st.booleans()):
        field += draw(st.sampled_from([".min", ".max", ".last", ".count"]))
    return field


HOSTILE_TEXT = st.text(max_size=12).map(lambda s: MARK + s).filter(
    lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
HOSTILE_NUMBERS = st.one_of(st.integers(-(10**30), 10**30),
                            st.floats(allow_nan=False, allow_infinity=False))


@HYPOTHESIS
@given(exprs(hostile_fields(), HOSTILE_TEXT, HOSTILE_NUMBERS))
def test_no_user_literal_ever_reaches_the_sql_text(expr: Expr) -> None:
    """Every value and key a user writes becomes a parameter: the SQL text holds none of them."""
    text = render(expr)
    sql, args = compile_where(text)
    assert MARK not in sql
    assert "zq" not in sql
    assert sql.isascii()
    assert sql.count("?") == len(args)
    for key in keys_of(expr):
        assert key in args


def keys_of(e: Expr) -> list[str]:
    """The params/tags/metrics keys an expression names."""
    if e[0] in ("cmp", "null"):
        section, _, key = e[1].partition(".")
        if not key:
            return []
        if section == "metrics":
            key = re.sub(r"\.(min|max|last|count)$", "", key)
        return [key]
    return [k for sub in e[1:] for k in keys_of(sub)]


def relabel(e: Expr, texts: Iterator[str], keys: dict[str, str]) -> Expr:
    """The same tree with every string literal and field key replaced."""
    if e[0] == "cmp":
        return ("cmp", rekey(e[1], keys), e[2],
                [next(texts) if isinstance(v, str) else v for v in e[3]])
    if e[0] == "null":
        return ("null", rekey(e[1], keys), e[2])
    if e[0] == "not":
        return ("not", relabel(e[1], texts, keys))
    return (e[0], relabel(e[1], texts, keys), relabel(e[2], texts, keys))


def rekey(field: str, keys: dict[str, str]) -> str:
    if "." not in field:
        return field
    section, _, key = field.partition(".")
    stat = ""
    for s in (".min", ".max", ".last", ".count"):
        if section == "metrics" and key.endswith(s):
            key, stat = key[: -len(s)], s
    return f"{section}.{keys.setdefault(key, 'zq' + uuid.uuid4().hex[:6])}{stat}"


@HYPOTHESIS
@given(exprs(hostile_fields(), HOSTILE_TEXT, HOSTILE_NUMBERS), st.data())
def test_sql_shape_does_not_depend_on_values(expr: Expr, data: st.DataObject) -> None:
    """Changing every string literal and key leaves the SQL text identical: only args change."""
    sql1, _ = compile_where(render(expr))
    others = iter(data.draw(st.lists(HOSTILE_TEXT, min_size=40, max_size=40)))
    sql2, _ = compile_where(render(relabel(expr, others, {})))
    assert sql1 == sql2


# -- compiled queries against a real catalog, checked by a pure-Python evaluator -------------


NAMES = ["a", "b", "ab"]
TEXTS = st.sampled_from(["a", "b", "ab", "A", "ba", "x'y", "5", ""])
NUMS = st.one_of(st.integers(-3, 3), st.sampled_from([-1.5, 0.0, 0.25, 2.0, 2.5]))
LIKES = ["a%", "%b", "_", "A%", "%", "%a%", "_b", "x'%"]


@st.composite
def run_specs(draw: st.DrawFn) -> list[dict[str, Any]]:
    specs = []
    for i in range(draw(st.integers(1, 6))):
        params = {}
        value = st.one_of(NUMS, TEXTS, st.booleans(), st.none())
        for key in ("x", "y"):
            if draw(st.booleans()):
                params[key] = draw(value)
        if draw(st.booleans()):  # a dict param, its fields reached as params.c.x, params.c.d.y
            c: dict[str, Any] = {}
            if draw(st.booleans()):
                c["x"] = draw(value)
            if draw(st.booleans()):
                c["d"] = {"y": draw(value)} if draw(st.booleans()) else {}
            params["c"] = c
            if draw(st.booleans()):
                params["c.x"] = draw(value)  # a param named so wins over the field
        tags = {}
        if draw(st.booleans()):
            tags["t"] = draw(st.sampled_from(["a", "b", "5", "2.5", "ab"]))
        metrics = {}
        if draw(st.booleans()):
            metrics["m"] = draw(st.lists(NUMS.map(float), min_size=1, max_size=3))
        specs.append({"label": f"s{i}", "name": draw(st.sampled_from(NAMES)), "params": params,
                      "tags": tags, "metrics": metrics, "fail": draw(st.booleans())})
    return specs


MODEL_FIELDS = st.sampled_from(["params.x", "params.y", "params.z", "tags.t", "metrics.m",
                                "metrics.m.min", "metrics.m.max", "name", "status",
                                "params.c.x", "params.c.d.y", "params.c.z"])
MODEL_TEXTS = st.one_of(TEXTS, st.sampled_from(LIKES), st.sampled_from(["failed", "finished"]))


def sql_like(value: str, pattern: str) -> bool:
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL) is not None


def as_num(v: Any) -> float | None:
    """The number SQLite holds for a param (value_num)."""
    if isinstance(v, (bool, int, float)):
        return float(v) if math.isfinite(float(v)) else None
    return None


def tag_num(v: str) -> float | None:
    try:
        f = float(v)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def compare(a: Any, op: str, b: Any) -> bool:
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def model(e: Expr, spec: dict[str, Any]) -> bool:
    """What a where expression means for one run, in plain Python."""
    kind = e[0]
    if kind == "and":
        return model(e[1], spec) and model(e[2], spec)
    if kind == "or":
        return model(e[1], spec) or model(e[2], spec)
    if kind == "not":
        return not model(e[1], spec)
    field = e[1]
    section, _, key = field.partition(".")
    if section == "metrics":
        name, _, stat = key.partition(".")
        values = spec["metrics"].get(name)
        got = None if not values else {
            "": values[-1], "last": values[-1], "min": min(values), "max": max(values)}[stat]
        if kind == "null":
            return (got is not None) == e[2]
        op, vals = e[2], e[3]
        if got is None:
            return False
        if op == "in":
            return any(got == v for v in vals)
        if op == "not in":
            return all(got != v for v in vals)
        return compare(got, op, vals[0])
    if section in ("name", "status"):
        got = spec["name"] if section == "name" else ("failed" if spec["fail"] else "finished")
        if kind == "null":
            return e[2]  # every run has a name and a status
        op, vals = e[2], e[3]
        if op == "like":
            return sql_like(got, vals[0])
        if op == "in":
            return got in vals
        if op == "not in":
            return got not in vals
        return compare(got, op, vals[0])
    # params and tags: a number column and a text column
    table = spec["params"] if section == "params" else spec["tags"]
    present = key in table
    raw = table.get(key)
    if section == "params" and not present:  # a field of a dict param: params.c.d.y
        node: Any = table
        for part in key.split("."):
            present = isinstance(node, dict) and part in node
            node = node.get(part) if present else None
        raw = node
    if section == "params":
        num, txt = as_num(raw), raw if isinstance(raw, str) else None
    else:
        num, txt = (tag_num(raw), raw) if present else (None, None)
    if kind == "null":
        has = present and (num is not None or txt is not None)
        return has == e[2]
    op, vals = e[2], e[3]

    def eq(v: Any) -> bool:
        if isinstance(v, str):
            return txt is not None and txt == v
        return num is not None and num == float(v)

    if op == "like":
        return txt is not None and sql_like(txt, vals[0])
    if op == "in":
        return any(eq(v) for v in vals)
    if op in ("!=", "not in"):
        return (num is not None or txt is not None) and not any(eq(v) for v in vals)
    v = vals[0]
    if isinstance(v, str):
        return txt is not None and compare(txt, op, v)
    return num is not None and compare(num, op, float(v))


@settings(HYPOTHESIS, max_examples=40)
@given(run_specs(), st.lists(exprs(MODEL_FIELDS, MODEL_TEXTS, NUMS), min_size=1, max_size=6))
def test_compiled_queries_agree_with_a_python_model(
    specs: list[dict[str, Any]], queries: list[Expr]
) -> None:
    """On random runs, every random where selects exactly the runs a Python evaluator picks."""
    name = f"/mlledger-q-{uuid.uuid4().hex}"
    ledger = Ledger(f"memory://{name}", capture_files=False)
    try:
        ids = fill(ledger, specs)
        for q in queries:
            text = render(q)
            want = [ids[s["label"]] for s in reversed(specs) if model(q, s)]
            assert ledger.runs(where=text).ids == want, text
            # the driven plan (taken when every condition matches many runs) agrees too
            with mock.patch.object(catalog_mod, "DRIVE_MIN_ROWS", 0):
                assert ledger.runs(where=text).ids == want, f"driven: {text}"
    finally:
        ledger.catalog.close()
        clear_memory_root(name)


def test_driven_plan_scans_the_narrower_condition_whatever_the_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every condition matching many runs, the plan scans the one matching the fewest
    (each row it passes costs a lookup per other condition), in either written order, and
    both orders give the same runs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(catalog_mod, "DRIVE_MIN_ROWS", 0)
    specs = [
        {"label": str(i), "name": "r", "params": {"lr": 0.1 if i % 10 else 0.001},
         "tags": {}, "loss": [0.9 if i % 5 else 0.1]}
        for i in range(40)
    ]
    with fast_ledger("memory", tmp_path) as ledger:
        ids = fill(ledger, specs)
        broad, narrow = "params.lr > 0.01", "metrics.loss < 0.5"  # 36 and 8 of 40 runs
        want = [ids[s["label"]] for s in reversed(specs) if s["params"]["lr"] > 0.01
                and s["loss"][0] < 0.5]
        assert len(want) == 4
        cat = ledger.catalog
        for text, narrow_at in ((f"{broad} and {narrow}", 1), (f"{narrow} and {broad}", 0)):
            assert ledger.runs(where=text).ids == want  # (syncs the catalog)
            plan = query_mod.compile_driven(text)
            assert plan is not None
            assert cat._driver(plan[0]) == narrow_at


def test_fields_named_lists_the_params_metrics_and_tags_a_query_uses() -> None:
    """Every params/metrics/tags field of a where and an order_by, once, stats left off."""
    where = "params.a > 1 and (metrics.loss.min < 2 or tags.t = 'params.x') and name = 'y'"
    assert fields_named(where, "-params.cfg.lr") == [
        ("params", "a"), ("metrics", "loss"), ("tags", "t"), ("params", "cfg.lr")]
    assert fields_named("params.a = 1 or params.a = 2") == [("params", "a")]
    assert fields_named(None, None) == []


# -- large expressions (issue 13, item 12) ------------------------------------------------------


@pytest.mark.parametrize("terms", [1001, 5000])
@pytest.mark.parametrize("op", ["or", "and"])
def test_thousands_of_terms_run(zoo: Zoo, terms: int, op: str) -> None:
    """A where of thousands of or/and terms runs and matches what a short one does."""
    if op == "or":  # only the last term matches a run: r2's lr = 0.01
        misses = [f"params.lr = {1000 + i}" for i in range(terms - 1)]
        text = " or ".join([*misses, "params.lr = 0.01"])
        assert zoo.where(text) == ["r2"]
    else:  # every term holds for every run that has an lr
        text = " and ".join(f"params.lr != {1000 + i}" for i in range(terms))
        assert zoo.where(text) == zoo.where("params.lr != 1000")


@pytest.mark.parametrize("values", [100, 40_000])
def test_in_lists_take_any_number_of_values(zoo: Zoo, values: int) -> None:
    """in / not in with thousands of numbers or strings give the answer a short list gives,
    under the 32,766-variable limit most SQLite builds have (older ones: 999)."""
    zoo.ledger.catalog.db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    nums = ", ".join(str(1000 + i) for i in range(values))
    texts = ", ".join(f"'v{i}'" for i in range(values))
    assert zoo.where(f"params.lr in ({nums}, 0.5, 1)") == zoo.where("params.lr in (0.5, 1)")
    assert zoo.where(f"params.opt not in ({texts}, 'sgd')") == zoo.where("params.opt != 'sgd'")
    assert zoo.where(f"metrics.acc in ({nums}, 0.9)") == ["r2"]
    assert zoo.where(f"name in ({texts}, 'eval')") == ["r3"]
    assert zoo.where(f"tags.team in ({texts}, 'cv')") == ["r4", "r1"]
    assert zoo.where(f"params.lr in ({nums}, 0.5) or params.opt in ({texts}, 'sgd')") == [
        "r4",
        "r2",
    ]


def test_an_expression_over_sqlite_limits_is_a_query_error(zoo: Zoo) -> None:
    """A where too large or too nested for SQLite raises a QueryError that says what to do."""
    too_many = " or ".join(f"params.lr = {i}" for i in range(70_000))
    deep = "(" * 90 + "params.lr = 1" + " or params.lr = 2)" * 90
    for text in (too_many, deep):
        with pytest.raises(QueryError) as err:
            zoo.where(text)
        assert "in (" in str(err.value)


def test_mlledger_log_takes_a_where_of_thousands_of_terms(zoo: Zoo) -> None:
    """mlledger log --where with 1,001 or-terms lists the matching run (was an internal error);
    one too large for SQLite exits 2 with the QueryError's advice."""
    from click.testing import CliRunner

    from mlledger.cli import cli

    url = zoo.ledger.url
    text = " or ".join([*(f"params.lr = {1000 + i}" for i in range(1000)), "params.lr = 0.01"])
    res = CliRunner().invoke(cli, ["--store", url, "log", "--json", "--where", text])
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in json.loads(res.stdout)] == [zoo.ids["r2"]]
    huge = " or ".join(f"params.lr = {i}" for i in range(70_000))
    res = CliRunner().invoke(cli, ["--store", url, "log", "--where", huge])
    assert res.exit_code == 2
    assert "in (" in res.output
    assert "internal error" not in res.output
