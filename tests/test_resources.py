"""Resources and cost in queries, ``to_pandas``, ``log`` and ``show`` (query.py, the
catalog's resources table, render.py, cli/browse.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers.cli import invoke

from mlledger import Ledger
from mlledger.errors import QueryError
from mlledger.query import compile_order, compile_where


@pytest.fixture
def priced(tmp_path: Path, workdir: Path) -> tuple[Ledger, list[str]]:
    """A store with an unpriced run, then rates, then a short and a long priced run."""
    with Ledger(str(tmp_path / "warm")).run("warm"):
        pass  # the first run of a process works out its environment: not in the figures
    ledger = Ledger(str(tmp_path / "store"))
    with ledger.run("old") as old:
        pass
    ledger.policy.set(rates={"currency": "USD", "instance_hour": 36.0})
    with ledger.run("short") as short:
        pass
    with ledger.run("long", tags={"team": "cv"}) as long:
        time.sleep(0.3)
    return ledger, [old.id, short.id, long.id]


def test_where_knows_resources_and_cost(priced: tuple[Ledger, list[str]]) -> None:
    """resources.X compares numbers (and gpu_model text); cost is resources.cost; a run
    not priced has no cost, so only 'cost is null' finds it."""
    ledger, (old, short, long) = priced
    assert list(ledger.runs(where="resources.wall_s > 0.25").ids) == [long]
    assert list(ledger.runs(where="cost > 0.002").ids) == [long]  # 0.3 s at 36/h = 0.003
    assert set(ledger.runs(where="cost >= 0").ids) == {short, long}
    assert list(ledger.runs(where="cost is null").ids) == [old]
    assert list(ledger.runs(where="resources.cost > 0.002 and tags.team = 'cv'").ids) == [long]
    assert list(ledger.runs(where="resources.gpu_model = 'H100'").ids) == []
    assert list(ledger.runs(where="resources.cpu_user_s >= 0").ids) == [long, short, old]


def test_order_by_resources_and_cost(priced: tuple[Ledger, list[str]]) -> None:
    """order_by sorts by resources.X and by cost, runs without the field last."""
    ledger, (old, short, long) = priced
    assert ledger.runs(order_by="-resources.wall_s").ids[0] == long
    assert list(ledger.runs(order_by="-cost").ids) == [long, short, old]
    assert list(ledger.runs(order_by="cost").ids) == [short, long, old]
    peak = list(ledger.runs(order_by="-resources.peak_rss_bytes").ids)
    assert sorted(peak) == sorted([old, short, long])


def test_resources_survive_reindex(priced: tuple[Ledger, list[str]]) -> None:
    """The catalog is a cache: a rebuild from the store alone answers the same queries."""
    ledger, (_, _, long) = priced
    ledger.reindex()
    assert list(ledger.runs(where="cost > 0.002").ids) == [long]


def test_to_pandas_has_resources_and_cost(priced: tuple[Ledger, list[str]]) -> None:
    """to_pandas() has a resources.X column per figure and a cost column."""
    ledger, (old, _, long) = priced
    df = ledger.runs().to_pandas().set_index("id")
    assert df.loc[long, "cost"] > 0.002
    assert df.loc[long, "resources.wall_s"] > 0.25
    assert df.loc[long, "resources.currency"] == "USD"
    assert df.loc[old, "cost"] != df.loc[old, "cost"]  # NaN: not priced


def test_compile_cost_is_resources_cost() -> None:
    """'cost' compiles exactly as 'resources.cost'; unknown fields name resources.X and cost."""
    assert compile_where("cost > 1") == compile_where("resources.cost > 1")
    assert compile_order("-cost") == compile_order("-resources.cost")
    with pytest.raises(QueryError, match=r"resources\.X, cost"):
        compile_where("costs > 1")
    with pytest.raises(QueryError, match="metrics are numbers"):
        compile_where("metrics.loss > 'x'")


def test_log_and_show_print_cost(priced: tuple[Ledger, list[str]]) -> None:
    """log's line and show's resources carry the cost; --json has it; an unpriced run
    prints none."""
    ledger, (old, _, long) = priced
    url = ledger.url
    result = invoke("log", url=url)
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    lines = {n: ln for n in ("old", "long") for ln in out if f" {n} " in ln}
    assert "USD" in lines["long"]
    assert "USD" not in lines["old"]
    rows = {r["id"]: r for r in json.loads(invoke("log", "--json", url=url).stdout)}
    assert rows[long]["cost"] > 0.002
    assert rows[long]["currency"] == "USD"
    assert rows[old]["cost"] is None
    shown = invoke("show", long, url=url).stdout
    assert "cost 0.00" in shown
    assert "USD" in shown
    data = json.loads(invoke("show", long, "--json", url=url).stdout)
    assert data["resources"]["cost"] == rows[long]["cost"]
    assert "  cost " not in invoke("show", old, url=url).stdout


def test_log_where_cost_on_the_command_line(priced: tuple[Ledger, list[str]]) -> None:
    """mlledger log --where 'cost > X' --order-by -cost filters and sorts by cost."""
    ledger, (_, short, long) = priced
    got = invoke("log", "--json", "--where", "cost >= 0", "--order-by", "-cost", url=ledger.url)
    assert [r["id"] for r in json.loads(got.stdout)] == [long, short]


def test_catalog_of_the_old_schema_is_rebuilt(priced: tuple[Ledger, list[str]]) -> None:
    """A catalog written by the schema before resources were indexed (6, no resources
    table) is left for a fresh one filled from the store: cost queries answer at once."""
    import sqlite3

    ledger, (_, _, long) = priced
    assert list(ledger.runs(where="cost > 0.002").ids) == [long]
    path = ledger.catalog.path
    ledger.catalog.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE resources")
    db.execute("UPDATE meta SET value = '6' WHERE key = 'schema'")
    db.commit()
    db.close()
    again = Ledger(ledger.url)
    assert list(again.runs(where="cost > 0.002").ids) == [long]
    assert again.catalog.path != path  # a fresh file, not the old one patched
