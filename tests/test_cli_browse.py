"""``mlledger log``, ``show``, ``diff``, ``lineage`` and ``artifact`` (mlledger.cli.browse)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import (
    Shared,
    build_shared,
    console,
    invoke,
    make_workdir,
    one_error_line,
    runs_in,
    unique_prefix,
)

from mlledger import Ledger


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A store with prep -> train x2 (one a ref target), a failed run and a folder output."""
    yield from build_shared(tmp_path_factory)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with data.csv and train.py, made the current directory."""
    return make_workdir(tmp_path, monkeypatch)


# ------------------------------------------------------------------------------- log


def test_log_text_one_run_a_line(shared: Shared) -> None:
    """log prints one line per run, newest first: short id prefix, age, name, status, metrics."""
    result = invoke("log", url=shared.url)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5
    first = lines[0].split()
    assert shared.export.startswith(first[0])
    assert len(first[0]) >= 12
    assert "ago" in lines[0]
    train2 = next(ln for ln in lines if shared.train2.startswith(ln.split()[0]))
    assert "train" in train2
    assert "finished" in train2
    assert "loss=0.4" in train2
    assert "failed" in next(ln for ln in lines if shared.failed.startswith(ln.split()[0]))


def test_log_json_shape(shared: Shared) -> None:
    """log --json lists run summaries with the documented keys."""
    runs = runs_in(shared.url)
    assert [r["id"] for r in runs][:2] == [shared.export, shared.failed]
    train1 = next(r for r in runs if r["id"] == shared.train1)
    assert set(train1) == {"id", "name", "status", "kind", "started_at", "ended_at", "wall_s",
                           "cost", "currency", "parent_id", "message", "user", "host", "tags",
                           "params", "metrics"}
    assert train1["params"] == {"lr": 0.1}
    assert train1["metrics"] == {"acc": pytest.approx(0.3), "loss": 0.7}
    assert train1["tags"] == {"team": "cv"}
    assert train1["message"] == "lr 0.1"


def test_log_filters(shared: Shared) -> None:
    """--name, --status, --where, --order-by and --limit narrow and sort the listing."""
    def ids(*args: str) -> list[str]:
        result = invoke("log", "--json", *args, url=shared.url)
        assert result.exit_code == 0, result.stderr
        return [r["id"] for r in json.loads(result.stdout)]

    assert ids("--name", "train") == [shared.train2, shared.train1]
    assert ids("--status", "failed") == [shared.failed]
    assert ids("--where", "params.lr > 0.15") == [shared.train2]
    assert ids("--where", "metrics.loss.min < 0.4") == [shared.train2]
    assert ids("--name", "train", "--order-by", "metrics.loss") == [shared.train2, shared.train1]
    assert ids("-n", "1") == [shared.export]


def test_log_says_which_field_no_run_has(shared: Shared) -> None:
    """A typo in a field or a name matches nothing: stderr says which field no run has and
    suggests the close ones runs do have; a field that exists gives no such line."""
    typo = invoke("log", "--where", "params.lrr > 0 and metrics.loss < 9", url=shared.url)
    assert typo.exit_code == 0
    assert typo.stderr.splitlines() == [
        "no run has params.lrr; did you mean params.lr?", "no runs match"]
    name = invoke("log", "--name", "trian", url=shared.url)
    assert name.stderr.splitlines() == [
        "no run has the name 'trian'; did you mean 'train'?", "no runs match"]
    ordered = invoke("log", "--order-by", "-metrics.losss", url=shared.url)
    assert ordered.stdout  # the runs are listed; the order field is unknown
    assert ordered.stderr.splitlines() == ["no run has metrics.losss; did you mean metrics.loss?"]
    none = invoke("log", "--where", "params.lr > 5", url=shared.url)
    assert none.stderr.splitlines() == ["no runs match"]


def test_log_bad_where_points_at_column(shared: Shared) -> None:
    """A --where that does not parse: exit 2, one line naming the column."""
    result = invoke("log", "--where", "params.lr >> 2", url=shared.url)
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "column 12" in line
    assert "params.lr >> 2" in line


def test_log_console(shared: Shared) -> None:
    """``mlledger log --json`` in a real process prints parseable JSON."""
    out = console("log", "--json", "--name", "train", url=shared.url)
    assert out.returncode == 0, out.stderr
    assert [r["id"] for r in json.loads(out.stdout)] == [shared.train2, shared.train1]


def test_log_colour_only_when_asked(shared: Shared) -> None:
    """Not a terminal: plain text; --color forces ANSI colours."""
    assert "\x1b[" not in invoke("log", url=shared.url).stdout
    assert "\x1b[" in invoke("--color", "log", url=shared.url).stdout


# ------------------------------------------------------------------------------ show


def test_show_text_whole_record(shared: Shared) -> None:
    """show prints params, metrics with min/max, artifacts with digests, code, env, resources."""
    result = invoke("show", unique_prefix(shared.url, shared.train1), url=shared.url)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"run {shared.train1}" in out
    assert "lr = 0.1" in out
    loss = next(ln for ln in out.splitlines() if ln.strip().startswith("loss"))
    assert loss.split()[1:4] == ["0.7", "0.5", "0.9"]
    assert shared.data in out
    assert shared.model1 in out
    for section in ("params", "metrics", "inputs", "outputs", "code", "environment", "resources"):
        assert f"\n{section}\n" in out
    assert "python" in out
    assert "packages" in out
    assert "installed" in out
    assert "message    lr 0.1" in out
    assert "team=cv" in out


def test_show_failed_run_has_traceback(shared: Shared) -> None:
    """A failed run shows its error type, message and traceback."""
    out = invoke("show", shared.failed, url=shared.url).stdout
    assert "ValueError: it broke" in out
    assert "Traceback (most recent call last)" in out


def test_show_json_is_the_record(shared: Shared) -> None:
    """show --json is the run's record plus its environment."""
    result = invoke("show", "--json", shared.train2, url=shared.url)
    data = json.loads(result.stdout)
    assert data["id"] == shared.train2
    assert data["status"] == "finished"
    assert data["metrics"]["loss"] == {"last": 0.4, "min": 0.3, "max": 0.8, "step": 2, "count": 3}
    assert data["outputs"]["model.bin"]["digest"] == shared.model2
    assert data["environment"]["python"]["version"].count(".") == 2
    assert isinstance(data["environment"]["packages"], dict)


def test_show_lists_a_config_field_by_field(tmp_path: Path, workdir: Path) -> None:
    """A dict param is shown as its fields, under the names where and diff use."""
    url = str(tmp_path / "store")
    with Ledger(url).run("cfg", params={"cfg": {"optim": {"lr": 0.1}, "layers": [4]}}) as r:
        pass
    out = invoke("show", r.id, url=url).stdout
    assert "  cfg.layers   = [4]" in out
    assert "  cfg.optim.lr = 0.1" in out
    assert invoke("log", "--where", "params.cfg.optim.lr = 0.1", url=url).stdout.count("cfg") == 1


def test_show_packages_lists_them(shared: Shared) -> None:
    """show --packages lists installed distributions, click among them."""
    out = invoke("show", "--packages", shared.prep, url=shared.url).stdout
    assert any(ln.split()[:1] == ["click"] for ln in out.splitlines())


def test_show_unknown_run(shared: Shared) -> None:
    """An id no run has: one line, exit 2."""
    result = invoke("show", "ZZZZZZZZ", url=shared.url)
    assert result.exit_code == 2
    assert "ZZZZZZZZ" in one_error_line(result.stderr)


def test_show_ambiguous_prefix(shared: Shared) -> None:
    """A prefix several runs share: one line listing candidates, exit 2."""
    result = invoke("show", shared.train1[:4], url=shared.url)
    assert result.exit_code == 2
    assert "more characters" in one_error_line(result.stderr)


def test_show_ref_to_artifact_is_usage_error(shared: Shared) -> None:
    """show @REF where the ref names an artifact: exit 2 pointing at 'artifact'."""
    result = invoke("show", "@model/prod", url=shared.url)
    assert result.exit_code == 2
    assert "mlledger artifact" in one_error_line(result.stderr)


def test_show_console(shared: Shared) -> None:
    """``mlledger show PREFIX`` in a real process; an unknown id exits 2 with one line."""
    out = console("show", unique_prefix(shared.url, shared.train2), url=shared.url)
    assert out.returncode == 0, out.stderr
    assert f"run {shared.train2}" in out.stdout
    bad = console("show", "ZZZZZZZZ", url=shared.url)
    assert bad.returncode == 2
    one_error_line(bad.stderr)


# ------------------------------------------------------------------------------ diff


def test_diff_text_grouped(shared: Shared) -> None:
    """diff groups changes by section with old -> new, uncoloured off a terminal."""
    result = invoke("diff", shared.train1, shared.train2, url=shared.url)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "params\n  ~ lr: 0.1 -> 0.2" in out
    assert "metrics" in out
    assert "outputs" in out
    assert "\x1b[" not in out


def test_diff_colour_forced(shared: Shared) -> None:
    """--color puts ANSI colours in the diff."""
    out = invoke("--color", "diff", shared.train1, shared.train2, url=shared.url).stdout
    assert "\x1b[33m" in out


def test_diff_json_and_sections(shared: Shared) -> None:
    """diff --json gives {a, b, changes}; --section keeps one section."""
    result = invoke("diff", "--json", "--section", "params", shared.train1, shared.train2,
                    url=shared.url)
    data = json.loads(result.stdout)
    assert data == {"a": shared.train1, "b": shared.train2, "changes": [
        {"section": "params", "key": "lr", "old": 0.1, "new": 0.2, "kind": "changed"}]}


def test_diff_same_run_is_empty(shared: Shared) -> None:
    """A run against itself differs in nothing."""
    out = invoke("diff", shared.train1, shared.train1, url=shared.url).stdout
    assert "differ in nothing" in out


def test_diff_console(shared: Shared) -> None:
    """``mlledger diff --json`` in a real process."""
    out = console("diff", "--json", shared.train1, shared.train2, url=shared.url)
    assert out.returncode == 0, out.stderr
    keys = {(c["section"], c["key"]) for c in json.loads(out.stdout)["changes"]}
    assert ("params", "lr") in keys
    assert ("outputs", "model.bin") in keys


# --------------------------------------------------------------------------- lineage


def test_lineage_upstream_text(shared: Shared) -> None:
    """Upstream of a model: the train run that made it and the prep run before it."""
    result = invoke("lineage", shared.model1, url=shared.url)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "(upstream): 2 runs, 3 artifacts" in out
    assert "prep" in out
    assert "train" in out
    assert "model.bin" in out
    assert "raw.csv" in out
    assert unique_prefix(shared.url, shared.train2, 12) not in out


def test_lineage_downstream_and_depth(shared: Shared) -> None:
    """--down from the raw data reaches both trainings; --depth 1 only the prep run."""
    down = json.loads(invoke("lineage", "--down", "--json", shared.raw, url=shared.url).stdout)
    assert {r["id"] for r in down["runs"]} == {shared.prep, shared.train1, shared.train2}
    assert down["direction"] == "downstream"
    near = json.loads(
        invoke("lineage", "--down", "--depth", "1", "--json", shared.raw, url=shared.url).stdout)
    assert {r["id"] for r in near["runs"]} == {shared.prep}


def test_lineage_formats(shared: Shared) -> None:
    """--format dot, mermaid and json print those languages; --json is json."""
    dot = invoke("lineage", "--format", "dot", f"{shared.train2}/model.bin", url=shared.url).stdout
    assert dot.startswith("digraph lineage {")
    mermaid = invoke("lineage", "--format", "mermaid", shared.train2, url=shared.url).stdout
    assert mermaid.startswith("flowchart LR")
    as_json = json.loads(
        invoke("lineage", "--format", "json", shared.train2, url=shared.url).stdout)
    assert set(as_json) == {"root", "direction", "runs", "artifacts", "edges"}
    assert {"source", "label", "target"} == set(as_json["edges"][0])
    assert json.loads(invoke("lineage", "--json", shared.train2, url=shared.url).stdout) == as_json


def test_lineage_console(shared: Shared) -> None:
    """``mlledger lineage @REF --format dot`` in a real process."""
    out = console("lineage", "@model/prod", "--format", "dot", url=shared.url)
    assert out.returncode == 0, out.stderr
    assert shared.train2 in out.stdout
    assert shared.prep in out.stdout


# -------------------------------------------------------------------------- artifact


def test_artifact_text_and_json(shared: Shared) -> None:
    """artifact shows kind, size, producers and consumers."""
    out = invoke("artifact", shared.data[:14], url=shared.url).stdout
    assert f"artifact {shared.data}" in out
    assert "kind       file" in out
    assert "producers" in out
    assert "consumers" in out
    data = json.loads(invoke("artifact", "--json", shared.data, url=shared.url).stdout)
    assert data["producers"] == [shared.prep]
    assert data["consumers"] == [shared.train1, shared.train2]
    assert data["kind"] == "file"
    assert data["digest"] == shared.data


def test_artifact_tree_files(shared: Shared) -> None:
    """A folder artifact lists its entries with --files."""
    data = json.loads(
        invoke("artifact", "--files", "--json", f"{shared.export}/bundle", url=shared.url).stdout)
    assert data["kind"] == "tree"
    assert data["files"] == 3
    assert {e["path"] for e in data["entries"]} == {"a.txt", "big.bin", "sub/b.txt"}
    text = invoke("artifact", "--files", shared.export, url=shared.url).stdout
    assert "sub/b.txt" in text


def test_artifact_of_run_with_many_outputs_is_usage_error(shared: Shared, tmp_path: Path) -> None:
    """A run target with no single output: exit 2, one line naming RUN/NAME."""
    result = invoke("artifact", shared.failed, url=shared.url)
    assert result.exit_code == 2
    assert "/NAME" in one_error_line(result.stderr)


def test_artifact_console(shared: Shared) -> None:
    """``mlledger artifact @REF --json`` in a real process."""
    out = console("artifact", "@model/prod", "--json", url=shared.url)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["producers"] == [shared.train2]
