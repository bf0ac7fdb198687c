"""The report's data, HTML and Markdown without a browser: what is embedded and how
(escaped, self-contained, NaN-safe), the curves' downsampling, the lineage layers,
writing (whole or not at all), publishing into the store, and the CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from helpers.cli import invoke
from helpers.report_ledger import (
    IMG_PARAM,
    LONG_PARAM,
    SCRIPT_MESSAGE,
    STEPS,
    ReportLedger,
    fill_report_ledger,
)

from mlledger import Ledger
from mlledger.errors import LedgerError, QueryError, UsageError
from mlledger.report import collect, embed_json, render_html, render_markdown
from mlledger.report.data import POINTS
from mlledger.report.graph import layers
from mlledger.report.lttb import lttb
from mlledger.store import layout


@pytest.fixture
def filled(ledger: Ledger, workdir: Path) -> ReportLedger:
    """The report's fixture ledger (see helpers/report_ledger.py) on a local store."""
    return fill_report_ledger(ledger, workdir)


def embedded(html: str) -> dict:
    """The JSON a written page carries."""
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert m is not None
    return json.loads(m.group(1))


# -- pure parts ------------------------------------------------------------------------


def test_embedded_json_cannot_end_its_script_element() -> None:
    """``<``, ``>``, ``&`` and U+2028/9 are escaped; the text still parses back to the value."""
    value = {"m": "</script><script>alert(1)</script> <!-- & \u2028\u2029 --> é"}
    text = embed_json(value)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == value


def test_embedded_json_refuses_nan() -> None:
    """A raw NaN would be invalid JSON in the page: the encoder refuses it (data.number
    turns it into a string first)."""
    with pytest.raises(ValueError):
        embed_json({"x": math.nan})


def test_lttb_keeps_the_ends_and_a_lone_peak() -> None:
    """10,000 flat points with one spike: 100 kept, the first, the last and the spike among them."""
    xs = [float(i) for i in range(10_000)]
    ys = [0.0] * 10_000
    ys[6_543] = 50.0
    kept = lttb(xs, ys, 100)
    assert len(kept) == 100
    assert kept[0] == 0
    assert kept[-1] == 9_999
    assert 6_543 in kept
    assert kept == sorted(set(kept))


def test_lttb_gives_short_series_back_whole_and_refuses_tiny_budgets() -> None:
    """A series within the budget is kept whole; fewer than 3 points is a usage error."""
    assert lttb([1.0, 2.0], [3.0, 4.0], 10) == [0, 1]
    with pytest.raises(ValueError):
        lttb([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], 2)


def test_layers_follow_the_longest_path_and_survive_a_cycle() -> None:
    """A node sits one right of its deepest source; a cycle still gives every node a layer."""
    got = layers(["d", "r1", "m", "r2", "x"], [("d", "r1"), ("r1", "m"), ("m", "r2"), ("d", "r2")])
    assert got == {"d": 0, "r1": 1, "m": 2, "r2": 3, "x": 0}
    cyc = layers(["a", "b"], [("a", "b"), ("b", "a")])
    assert set(cyc) == {"a", "b"}
    assert cyc["a"] != cyc["b"]


# -- what a report holds ---------------------------------------------------------------


def test_report_data_lists_every_run_newest_first_with_the_damaged_one(
    filled: ReportLedger,
) -> None:
    """Every run is a row, newest first; the run with a garbage record is a ``damaged`` row."""
    data = collect(filled.ledger)
    ids = [r["id"] for r in data["runs"]]
    assert ids == sorted(ids, reverse=True)
    assert set(ids) == {
        filled.prep,
        *filled.trains,
        filled.hostile,
        filled.failed,
        filled.damaged,
    } | {r.id for r in filled.ledger.runs(name="evaluate")}
    damaged = next(r for r in data["runs"] if r["id"] == filled.damaged)
    assert damaged["status"] == "damaged"
    assert "verify" in damaged["reason"]
    failed = next(r for r in data["runs"] if r["id"] == filled.failed)
    assert failed["status"] == "failed"
    assert "loss is nan" in failed["error"]
    assert data["total"] == len(ids)


def test_curves_are_downsampled_and_say_from_how_many(filled: ReportLedger) -> None:
    """A 1,500-point history is cut to POINTS by LTTB, with its length kept; NaN/inf
    values are counted, not drawn, and the last value inf is the string 'Infinity'."""
    data = collect(filled.ledger)
    loss = data["curves"][filled.trains[0]]["loss"]
    assert loss["n"] == STEPS
    assert len(loss["s"]) == len(loss["v"]) == POINTS
    assert loss["s"][0] == 0
    assert loss["s"][-1] == STEPS - 1
    ev = filled.ledger.runs(name="evaluate")[0].id
    score = data["curves"][ev]["score"]
    assert score == {"s": [2], "v": [0.5], "n": 3, "bad": 2}
    row = next(r for r in data["runs"] if r["id"] == ev)
    assert row["metrics"] == {"drift": "Infinity", "score": 0.5}
    json.dumps(data, allow_nan=False)  # nothing non-finite is left


def test_curve_budget_is_explicit(filled: ReportLedger) -> None:
    """Curves only for the first ``curve_runs`` runs; the page is told the budget."""
    data = collect(filled.ledger, curve_runs=2)
    assert set(data["curves"]) <= {r["id"] for r in data["runs"][:2]}
    assert data["curve_runs"] == 2


def test_where_and_limit_choose_the_runs(filled: ReportLedger) -> None:
    """``where`` is the query language; ``limit`` keeps the newest; the total counts matches."""
    data = collect(filled.ledger, where="name = 'train' and params.lr < 0.05")
    assert {r["id"] for r in data["runs"]} == set(filled.trains[1:])
    data = collect(filled.ledger, where="name = 'train'", limit=2)
    assert len(data["runs"]) == 2
    assert data["total"] == 5
    with pytest.raises(QueryError):
        collect(filled.ledger, where="params.lr >>> 1")


def test_diff_facts_lineage_and_refs_are_embedded(filled: ReportLedger) -> None:
    """Each row carries what a diff compares; the environment's packages are embedded once;
    the lineage links prep -> data -> train -> model; the ref's three moves are there."""
    data = collect(filled.ledger)
    t0 = next(r for r in data["runs"] if r["id"] == filled.trains[0])
    assert t0["params"]["optimizer.name"] == "adam"
    assert t0["in"]["data.csv"].startswith("xxh128:")
    assert t0["env"] in data["envs"]
    assert data["envs"][t0["env"]]["packages"]
    nodes = {n["id"]: n for n in data["lineage"]["nodes"]}
    data_digest = t0["in"]["data.csv"]
    assert nodes[filled.prep]["layer"] < nodes[data_digest]["layer"] < nodes[t0["id"]]["layer"]
    assert [data_digest, "used", t0["id"]] in data["lineage"]["edges"]
    (ref,) = data["refs"]
    assert ref["name"] == "model/prod"
    assert [m["action"] for m in ref["moves"]] == ["rollback", "set", "set"]
    assert ref["moves"][1]["message"] == "<i>lower lr</i>"


def test_check_results_are_embedded_for_the_runs_checked(filled: ReportLedger) -> None:
    """The checked run's newest results are embedded in rule order (one failing here);
    runs never checked have none."""
    data = collect(filled.ledger)
    assert set(data["checks"]) == {filled.trains[1]}
    results = data["checks"][filled.trains[1]]
    assert [(c["rule"], c["ok"]) for c in results] == [
        ("loss-holds", False),
        ("accuracy-floor", True),
    ]


def test_a_run_with_a_cost_gets_cost_and_currency(ledger: Ledger) -> None:
    """A run whose resources hold cost and currency (what rates record) has both in its
    row; a run without has no cost key at all."""
    from mlledger.report.data import run_row
    from mlledger.runs import Run

    with ledger.run("train") as run:
        pass
    rec = dict(run.record)
    assert "cost" not in run_row(Run(ledger.writer, rec))
    rec["resources"] = {**rec["resources"], "cost": 0.125, "currency": "EUR"}
    assert run_row(Run(ledger.writer, rec))["cost"] == [0.125, "EUR"]


def test_each_ref_changelog_is_embedded(filled: ReportLedger) -> None:
    """Each ref's changelog (ledger.changelog's text) is embedded, newest move first."""
    data = collect(filled.ledger)
    (log,) = data["changelogs"]
    assert log["ref"] == "model/prod"
    assert log["text"] == filled.ledger.changelog("model/prod", limit=20).to_text()
    assert log["text"].index("accuracy dropped") < log["text"].index("first model")


def test_html_is_one_self_contained_file(filled: ReportLedger, tmp_path: Path) -> None:
    """No src/href/url()/@import points anywhere; no external script; hostile text sits
    only inside the escaped JSON; a Content-Security-Policy forbids any fetch."""
    html = render_html(collect(filled.ledger))
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", html, re.I)
    assert "@import" not in html
    assert re.findall(r"url\(([^)]*)\)", html) == ["#arrow"]  # the SVG's own arrow marker
    assert "<script src" not in html.lower()
    assert "<link" not in html.lower()
    assert "default-src 'none'" in html
    assert SCRIPT_MESSAGE not in html
    assert IMG_PARAM not in html
    assert html.lower().count("</script>") == 2  # the data element's end and the code's end
    data = embedded(html)
    hostile = next(r for r in data["runs"] if r["id"] == filled.hostile)
    assert hostile["message"] == SCRIPT_MESSAGE
    assert hostile["params"]["notes"] == LONG_PARAM


def test_empty_ledger_writes_a_page_that_says_so(ledger: Ledger, tmp_path: Path) -> None:
    """An empty ledger still gives a whole page (the page says there are no runs) and a
    Markdown summary that says so."""
    out = Path(ledger.report(tmp_path / "r.html"))
    data = embedded(out.read_text())
    assert data["runs"] == []
    assert data["total"] == 0
    assert data["refs"] == []
    md = Path(ledger.report(tmp_path / "r.md", format="markdown")).read_text()
    assert "This ledger has no runs yet." in md


def test_markdown_summary_escapes_markup(filled: ReportLedger, tmp_path: Path) -> None:
    """The Markdown has the runs table and each metric's range; a message's HTML and pipes
    are escaped."""
    md = render_markdown(collect(filled.ledger))
    assert "| run | name | status |" in md
    assert "### Metrics" in md
    assert "<script>" not in md
    assert "&lt;script&gt;" in md
    assert re.search(r"\| loss \| 4 \| ", md)
    table = next(ln for ln in md.splitlines() if filled.hostile[:12] in ln)
    assert table.count(" | ") == md.splitlines()[6].count(" | ")  # the cells stayed in place


def test_writing_replaces_the_file_whole_and_refuses_a_missing_folder(
    filled: ReportLedger, tmp_path: Path
) -> None:
    """The report lands under its name with ordinary permissions and no temp file left;
    a missing folder is a one-line usage error and writes nothing."""
    dest = tmp_path / "out" / "report.html"
    with pytest.raises(UsageError, match="does not exist; create it"):
        filled.ledger.report(dest)
    assert not (tmp_path / "out").exists()
    dest.parent.mkdir()
    dest.write_text("old")
    assert filled.ledger.report(dest) == str(dest)
    assert dest.read_text().startswith("<!DOCTYPE html>")
    assert oct(dest.stat().st_mode & 0o777) != oct(0o600)
    assert [p.name for p in dest.parent.iterdir()] == ["report.html"]
    with pytest.raises(UsageError, match="format"):
        filled.ledger.report(dest, format="pdf")
    with pytest.raises(UsageError, match="limit"):
        filled.ledger.report(dest, limit=0)
    assert isinstance(UsageError("x"), (LedgerError, ValueError))


def test_publish_writes_create_only_under_reports_and_verify_stays_clean(
    filled: ReportLedger,
) -> None:
    """Each publish is a new key under reports/<day>/; its bytes are the page; verify
    finds no damage; publishing again never overwrites."""
    ledger = filled.ledger
    first = ledger.report(None, publish=True)
    second = ledger.report(None, publish=True, format="markdown")
    assert first != second
    keys = [u[len(ledger.url.rstrip("/")) + 1 :] for u in (first, second)]
    assert all(k.startswith(layout.REPORTS + "/") for k in keys)
    assert keys[0].endswith(".html")
    assert keys[1].endswith(".md")
    page = ledger.store.read_entry(keys[0]).decode()
    assert embedded(page)["store"] == ledger.url
    assert ledger.store.create_entry(keys[0], b"again") is False
    assert ledger.store.read_entry(keys[0]).decode() == page
    report = ledger.verify()
    assert not report.missing
    assert not report.corrupt
    assert [filled.damaged in k for k, _ in report.damaged] == [True]  # the fixture's own


def test_cli_report_writes_html_markdown_and_publishes(filled: ReportLedger, workdir: Path) -> None:
    """``mlledger report`` writes mlledger-report.html by default, -o and --format markdown
    elsewhere, --publish prints the store URL; bad input exits 2 with one line."""
    url = filled.ledger.url
    res = invoke("report", url=url)
    assert res.exit_code == 0, res.output
    assert (workdir / "mlledger-report.html").exists()
    assert "mlledger-report.html" in res.output
    res = invoke(
        "report", "--format", "markdown", "--where", "name = 'train'", "--limit", "2", url=url
    )
    assert res.exit_code == 0
    assert "## mlledger report" in (workdir / "mlledger-report.md").read_text()
    res = invoke("report", "--publish", "-o", str(workdir / "also.html"), url=url)
    assert (workdir / "also.html").exists()
    assert res.exit_code == 0
    assert f"{url}/reports/" in res.output
    res = invoke("report", "--where", "params.lr >>> 1", url=url)
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1
    res = invoke("report", "-o", str(workdir / "nope" / "r.html"), url=url)
    assert res.exit_code == 2
    assert "does not exist" in res.stderr
    res = invoke("report", "--limit", "0", url=url)
    assert res.exit_code == 2
