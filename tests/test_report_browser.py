"""The report in a real headless Chromium (Debian's ``chromium``, driven by Playwright's
Python package; nothing is downloaded): opened over ``file://`` with every request
routed, it asks for nothing but itself, logs no error, lists the runs, draws curves,
diffs two ticked runs, draws the lineage and never runs a message's ``<script>``.
Screenshots of each view go to ``$MLLEDGER_ARTIFACTS`` (default: the test's tmp dir)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.report_ledger import SCRIPT_MESSAGE, STEPS, ReportLedger, fill_report_ledger

from mlledger import Ledger

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed (test extra)"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no system Chromium: install Debian's chromium (apt-get install -y chromium); "
        ".ci/run does so as root",
    ),
]


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ReportLedger]]:
    """The fixture ledger's report, written once for this module (own XDG dirs and cwd)."""
    base = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            (base / var).mkdir()
            mp.setenv(var, str(base / var))
        work = base / "work"
        work.mkdir()
        mp.chdir(work)
        filled = fill_report_ledger(Ledger(str(base / "store")), work)
        path = Path(filled.ledger.report(base / "report.html"))
        yield path, filled


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Opened:
    """A page with the report open: console errors and requests for anything else seen."""

    def __init__(self, browser: Any, path: Path, **context: Any) -> None:
        self.url = path.as_uri()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.context = browser.new_context(**context)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(self.url)

    def _route(self, route: Any) -> None:
        if route.request.url.split("#")[0] == self.url:
            route.continue_()
        else:
            self.requests.append(route.request.url)
            route.abort()

    def view(self, name: str) -> None:
        self.page.evaluate(f"location.hash = '#/{name}'")
        self.page.wait_for_selector(f"#view-{name}:not([hidden])")
        self.page.evaluate("window.scrollTo(0, 0)")

    def tick(self, *run_ids: str) -> None:
        for rid in run_ids:
            self.page.check(f'tr[data-id="{rid}"] input[type=checkbox]')

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def opened(browser: Any, fixture_report: tuple[Path, ReportLedger]) -> Iterator[Opened]:
    """The fixture report open at 1280x800; after the test: no console error, no request."""
    o = Opened(browser, fixture_report[0], viewport={"width": 1280, "height": 800})
    yield o
    o.close()
    assert o.errors == []
    assert o.requests == []


def artifacts_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("MLLEDGER_ARTIFACTS") or tmp_path) / "report-screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_the_table_lists_every_run_and_the_damaged_one(
    opened: Opened, fixture_report: tuple[Path, ReportLedger]
) -> None:
    """The table's rows are the fixture's runs, newest first; the damaged run reads 'damaged'."""
    filled = fixture_report[1]
    ids = opened.page.eval_on_selector_all("#runs-body tr", "rs => rs.map(r => r.dataset.id)")
    expected = [r.id for r in filled.ledger.runs()] + [filled.damaged]
    assert sorted(ids, reverse=True) == ids
    assert set(ids) == set(expected)
    status = opened.page.text_content(f'tr[data-id="{filled.damaged}"] .status')
    assert status == "damaged"
    assert "Infinity" in opened.page.text_content("#runs-body")


def test_a_script_in_a_message_is_text_and_never_runs(
    opened: Opened, fixture_report: tuple[Path, ReportLedger]
) -> None:
    """The hostile run's message shows as its literal text; neither it nor the <img onerror>
    param ran (no global set, no element made from them)."""
    filled = fixture_report[1]
    cell = opened.page.text_content(f'tr[data-id="{filled.hostile}"] td.msg')
    assert SCRIPT_MESSAGE in cell
    assert opened.page.evaluate("window.__pwned") is None
    made = "document.querySelectorAll('img, main script, td.msg b').length"
    assert opened.page.evaluate(made) == 0


def test_sorting_and_filtering_the_table(
    opened: Opened, fixture_report: tuple[Path, ReportLedger]
) -> None:
    """Clicking 'name' sorts by name (again: reversed); the text box keeps matching rows only."""
    page = opened.page
    page.click('th[data-key="name"]')
    names = page.eval_on_selector_all("#runs-body td.name", "ts => ts.map(t => t.textContent)")
    assert names == sorted(names)
    page.click('th[data-key="name"]')
    names = page.eval_on_selector_all("#runs-body td.name", "ts => ts.map(t => t.textContent)")
    assert names == sorted(names, reverse=True)
    page.fill("#filter", "lr=0.03")
    ids = page.eval_on_selector_all("#runs-body tr", "rs => rs.map(r => r.dataset.id)")
    assert ids == [fixture_report[1].trains[1]]
    page.fill("#filter", "no such run anywhere")
    assert page.is_visible("#runs-empty")


def test_a_long_param_is_cut_and_expands(
    opened: Opened, fixture_report: tuple[Path, ReportLedger]
) -> None:
    """The 10,000-character param shows its start and a 'more' button that shows it whole."""
    row = f'tr[data-id="{fixture_report[1].hostile}"]'
    before = opened.page.text_content(f"{row} td.params")
    assert "more (10,000 chars)" in before
    assert "x" * 10_000 not in before
    opened.page.click(f"{row} td.params button.more")
    assert "x" * 10_000 in opened.page.text_content(f"{row} td.params")


def test_ticked_runs_get_overlaid_curves_saying_they_were_downsampled(
    opened: Opened, fixture_report: tuple[Path, ReportLedger]
) -> None:
    """Two ticked training runs draw one non-empty path each per shared metric, and the
    note says the 1,500-point histories were downsampled."""
    a, b = fixture_report[1].trains[:2]
    opened.tick(a, b)
    opened.view("curves")
    paths = opened.page.eval_on_selector_all(
        "#charts path.curve", "ps => ps.map(p => [p.dataset.run, p.getAttribute('d').length])"
    )
    assert sorted({r for r, _ in paths}) == sorted([a, b])
    assert len(paths) == 4  # loss and accuracy, two runs each
    assert all(n > 1000 for _, n in paths)
    assert f"downsampled from {STEPS:,} points" in opened.page.text_content("#curves-note")


def test_ticking_two_runs_shows_their_diff(
    opened: Opened, fixture_report: tuple[Path, ReportLedger]
) -> None:
    """The diff of two ticked training runs lists the lr they differ in, with the change,
    their model outputs, and their metrics; nothing from times."""
    a, b = fixture_report[1].trains[:2]
    opened.tick(a, b)
    opened.view("diff")
    rows = opened.page.eval_on_selector_all(
        "#diff-body tr", "rs => rs.map(r => Array.from(r.cells).map(c => c.textContent))"
    )
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[("params", "lr")][2:] == ["0.1", "0.03", "-0.07"]
    assert ("metrics", "loss") in by_key
    assert {k for s, k in by_key if s == "outputs"} == {"model-0.pt", "model-1.pt"}
    assert not any(s in ("started", "resources") for s, _ in by_key)


def test_the_lineage_graph_has_the_fixture_nodes(
    opened: Opened, fixture_report: tuple[Path, ReportLedger]
) -> None:
    """The SVG graph has a node for prep, each training run and the data they used, and
    edges between them."""
    filled = fixture_report[1]
    opened.view("lineage")
    nodes = opened.page.eval_on_selector_all("#lineage g.node", "gs => gs.map(g => g.dataset.id)")
    data_digest = filled.ledger.get(filled.trains[0]).inputs["data.csv"].digest
    assert {filled.prep, *filled.trains, data_digest} <= set(nodes)
    assert opened.page.eval_on_selector_all("#lineage path.edge", "ps => ps.length") >= 7


def test_refs_show_each_move(opened: Opened) -> None:
    """Clicking the Refs tab shows it without scrolling past the header; the ref's three
    moves are listed newest first with their messages, as text."""
    opened.page.click("#tab-refs")
    opened.page.wait_for_selector("#view-refs:not([hidden])")
    assert opened.page.evaluate("window.scrollY") == 0
    text = opened.page.text_content("#refs")
    assert "model/prod" in text
    newest, middle, oldest = "accuracy dropped", "<i>lower lr</i>", "first model"
    assert text.index(newest) < text.index(middle) < text.index(oldest)


def test_check_results_show_in_the_table_and_their_tab(
    opened: Opened, fixture_report: tuple[Path, ReportLedger]
) -> None:
    """The checked run's row links to its results ('1 of 2 checks' failed), and the Checks
    tab lists each rule with pass or fail; alerts, empty, have no tab."""
    row = f'tr[data-id="{fixture_report[1].trains[1]}"]'
    assert opened.page.text_content(f"{row} a.checkmark") == "✗ 1 of 2 checks"
    tabs = opened.page.eval_on_selector_all("#tabs a", "as => as.map(a => a.textContent)")
    assert tabs == ["Runs", "Curves", "Diff", "Lineage", "Refs", "Checks", "Changelogs"]
    opened.page.click(f"{row} a.checkmark")
    opened.page.wait_for_selector("#view-checks:not([hidden])")
    text = opened.page.text_content("#checks")
    assert "loss-holds" in text
    assert "accuracy-floor" in text
    assert "fail" in text


def test_the_changelog_tab_shows_each_ref_as_text(opened: Opened) -> None:
    """The Changelogs tab shows the ref's changelog, its HTML-looking message as text."""
    opened.view("changelogs")
    assert opened.page.text_content("#changelogs h3") == "model/prod"
    text = opened.page.text_content("#changelogs pre")
    assert "<i>lower lr</i>" in text
    assert opened.page.evaluate("document.querySelectorAll('#changelogs i').length") == 0


def test_printing_shows_every_view_without_the_controls(opened: Opened, tmp_path: Path) -> None:
    """In print media every view with content is laid out one after another (curves,
    diff and lineage drawn), and the tabs, filter and pager are hidden; a PDF is kept."""
    page = opened.page
    page.emulate_media(media="print")
    page.wait_for_selector("#charts path.curve", state="attached")
    shown = page.eval_on_selector_all(
        ".view", "vs => vs.filter(v => getComputedStyle(v).display !== 'none').map(v => v.id)"
    )
    assert shown == [
        "view-runs", "view-curves", "view-diff", "view-lineage", "view-refs", "view-checks",
        "view-changelogs",
    ]  # fmt: skip
    for hidden in ("#tabs", "#filter", ".pager"):
        assert page.eval_on_selector(hidden, "e => getComputedStyle(e).display") == "none"
    assert page.eval_on_selector_all("#lineage g.node", "gs => gs.length") > 0
    pdf = artifacts_dir(tmp_path) / "report-print.pdf"
    page.pdf(path=str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF")


def test_a_cost_column_appears_when_runs_have_a_cost(
    browser: Any, fixture_report: tuple[Path, ReportLedger], tmp_path: Path
) -> None:
    """With a run's cost in the data, the table gains a sortable 'cost' column showing the
    amount and currency; without, there is no such column."""
    from mlledger.report import collect, render_html

    filled = fixture_report[1]
    data = collect(filled.ledger)
    plain = Opened(browser, fixture_report[0])
    try:
        assert plain.page.query_selector('th[data-key="cost"]') is None
    finally:
        plain.close()
    data["runs"][1]["cost"] = [1.25, "USD"]
    path = tmp_path / "cost.html"
    path.write_text(render_html(data), encoding="utf-8")
    o = Opened(browser, path)
    try:
        o.page.click('th[data-key="cost"]')
        first = o.page.eval_on_selector("#runs-body tr", "r => r.dataset.id")
        assert first == data["runs"][1]["id"]
        assert o.page.text_content("#runs-body tr td.num") == "1.25 USD"
    finally:
        o.close()
    assert o.errors == []
    assert o.requests == []


def test_alerts_given_to_the_report_get_their_own_tab(
    browser: Any, fixture_report: tuple[Path, ReportLedger], tmp_path: Path
) -> None:
    """Alerts passed in (the extension point ``extras={"alerts": [...]}``) show in an
    Alerts tab, each message as text; without alerts there is no such tab."""
    from mlledger.report import collect, render_html

    filled = fixture_report[1]
    alert = {"kind": "failed", "run_id": filled.failed, "rule": None, "at": "2026-12-06T05:00:00Z"}
    alert["message"] = "<b>train failed</b>: loss is nan"
    data = collect(filled.ledger, extras={"alerts": [alert]})
    path = tmp_path / "alerts.html"
    path.write_text(render_html(data), encoding="utf-8")
    o = Opened(browser, path)
    try:
        o.view("alerts")
        text = o.page.text_content("#alerts")
        assert "<b>train failed</b>: loss is nan" in text
        assert filled.failed[:12] in text
        assert o.page.evaluate("document.querySelectorAll('#alerts b').length") == 0
    finally:
        o.close()
    assert o.errors == []
    assert o.requests == []


def test_an_empty_ledger_page_says_so(browser: Any, tmp_path: Path) -> None:
    """The report of an empty ledger says there are no runs, with no error."""
    path = Path(Ledger(str(tmp_path / "store")).report(tmp_path / "empty.html"))
    o = Opened(browser, path)
    try:
        assert "This ledger has no runs yet." in o.page.text_content("#runs-empty")
        assert o.page.is_hidden("#runs")
    finally:
        o.close()
    assert o.errors == []
    assert o.requests == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 375])
def test_screenshots_of_each_view(
    browser: Any,
    fixture_report: tuple[Path, ReportLedger],
    tmp_path: Path,
    width: int,
    scheme: str,
) -> None:
    """Each view renders at 1280x800 and at a 375-px phone width, light and dark, with no
    error and no horizontal overflow of the page itself; a screenshot of each is kept."""
    filled = fixture_report[1]
    o = Opened(
        browser, fixture_report[0], viewport={"width": width, "height": 800}, color_scheme=scheme
    )
    try:
        o.tick(*filled.trains[:2])  # the views show what two ticked runs give
        out = artifacts_dir(tmp_path)
        for view in ("runs", "curves", "diff", "lineage", "refs", "checks", "changelogs"):
            o.view(view)
            overflow = o.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{view} at {width}px overflows the page by {overflow}px"
            shot = out / f"{view}-{width}-{scheme}.png"
            o.page.screenshot(path=str(shot))
            assert shot.stat().st_size > 1000
    finally:
        o.close()
    assert o.errors == []
    assert o.requests == []
