"""The ``mlledger`` command line, through click's runner and the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import fsspec
import pytest
from click.testing import CliRunner, Result

from mlledger import Ledger
from mlledger.cli import cli
from mlledger.cli import options as cli_options
from mlledger.cli import state as cli_state

SCRIPT_DIR = os.path.dirname(sys.executable)
MLLEDGER = shutil.which("mlledger", path=SCRIPT_DIR) or shutil.which("mlledger")

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import mlledger

    args = sys.argv[1:]
    lr = float(args[args.index("--lr") + 1]) if "--lr" in args else 0.1
    text = open("data.csv").read()
    run = mlledger.current_run()
    if run is not None:  # None with MLLEDGER_DISABLE=1
        run.log(step=1, loss=1 / lr)
    with open("model.txt", "w") as f:
        f.write(f"model lr={lr} rows={len(text.splitlines())}")
    print("trained", lr)
    if "--exit" in args:
        sys.exit(int(args[args.index("--exit") + 1]))
    if "--raise" in args:
        raise ValueError("the script broke")
    """
)


# --------------------------------------------------------------------------- helpers


@dataclass
class Shared:
    """One store built once for the module, with the ids and digests tests look for."""

    url: str
    prep: str
    train1: str
    train2: str
    failed: str
    export: str
    raw: str
    data: str
    model1: str
    model2: str
    bundle: str
    bundle_bytes: bytes


def invoke(*args: str, url: str | None = None, **kwargs: Any) -> Result:
    """``mlledger [--store url] args`` through click's runner (stdout and stderr apart)."""
    prefix = ["--store", url] if url else []
    return CliRunner().invoke(cli, [*prefix, *args], catch_exceptions=False, **kwargs)


def console(
    *args: str, url: str | None = None, cwd: Path | str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``mlledger [--store url] args`` as the installed console script, in a real process."""
    assert MLLEDGER is not None, "the mlledger console script is not installed (pip install -e .)"
    prefix = ["--store", url] if url else []
    return subprocess.run(
        [MLLEDGER, *prefix, *args], capture_output=True, text=True, cwd=cwd, timeout=60,
        env={**os.environ, **env}, check=False,
    )


def one_error_line(stderr: str) -> str:
    """The stderr of a failed command: exactly one ``mlledger: error:`` line, no traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mlledger: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def runs_in(url: str) -> list[dict[str, Any]]:
    """Every run of a store as ``log --json`` prints them."""
    result = invoke("log", "-n", "0", "--json", url=url)
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def unique_prefix(url: str, run_id: str, at_least: int = 16) -> str:
    """The shortest prefix of ``run_id`` (``at_least`` characters or more) no other run shares.

    Runs started in the same millisecond share all but the last few characters
    of their ids, so a fixed-length prefix can be ambiguous.
    """
    others = [r["id"] for r in runs_in(url) if r["id"] != run_id]
    n = at_least
    while any(o.startswith(run_id[:n]) for o in others):
        n += 1
    return run_id[:n]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A store with prep -> train x2 (one a ref target), a failed run and a folder output."""
    base = tmp_path_factory.mktemp("cli-shared")
    work = base / "work"
    work.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            mp.setenv(var, str(base / "xdg" / var.lower()))
        mp.delenv("MLLEDGER_URL", raising=False)
        mp.delenv("MLLEDGER_DISABLE", raising=False)
        mp.chdir(work)
        ledger = Ledger(str(base / "store"))
        (work / "raw.csv").write_text("x,y\n1,2\n3,4\n")
        with ledger.run("prep", params={"seed": 1}) as prep:
            rows = Path("raw.csv").read_text().splitlines()
            Path("data.csv").write_text("\n".join(rows[1:]) + "\n")
        runs = []
        for lr, losses in ((0.1, (0.9, 0.5, 0.7)), (0.2, (0.8, 0.3, 0.4))):
            msg = f"lr {lr}"
            with ledger.run("train", params={"lr": lr}, message=msg, tags={"team": "cv"}) as r:
                r.use("data.csv")
                for step, loss in enumerate(losses):
                    r.log(step=step, loss=loss, acc=1 - loss)
                Path("model.bin").write_bytes(f"weights {lr}".encode())
                r.save("model.bin")
            runs.append(r)
        try:
            with ledger.run("broken") as failed:
                raise ValueError("it broke")
        except ValueError:
            pass
        bundle = work / "bundle"
        (bundle / "sub").mkdir(parents=True)
        (bundle / "a.txt").write_text("alpha\n")
        (bundle / "sub" / "b.txt").write_text("beta\n")
        (bundle / "big.bin").write_bytes(os.urandom(300_000))
        with ledger.run("export") as export:
            art = export.save("bundle")
        bundle_bytes = (bundle / "big.bin").read_bytes()
        ledger.refs.set("model/prod", f"{runs[0].id}/model.bin", message="first")
        ledger.refs.set("model/prod", f"{runs[1].id}/model.bin", message="better")
        yield Shared(
            url=ledger.url, prep=prep.id, train1=runs[0].id, train2=runs[1].id, failed=failed.id,
            export=export.id, raw=prep.inputs["raw.csv"].digest,
            data=prep.outputs["data.csv"].digest,
            model1=runs[0].outputs["model.bin"].digest, model2=runs[1].outputs["model.bin"].digest,
            bundle=art.digest, bundle_bytes=bundle_bytes,
        )


@pytest.fixture
def store_copy(shared: Shared, tmp_path: Path) -> str:
    """A private copy of the shared store, for tests that change it."""
    dest = tmp_path / "store-copy"
    shutil.copytree(shared.url, dest)
    return str(dest)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with data.csv and train.py, made the current directory."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("a,b\n1,2\n")
    (work / "train.py").write_text(TRAIN_SCRIPT)
    monkeypatch.chdir(work)
    return work


# ------------------------------------------------------------------------ help, usage


def _commands(cmd: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))


def test_every_command_and_option_has_help() -> None:
    """Every command and every option in the whole command tree has help text."""
    missing = []
    for path, cmd in _commands(cli, ("mlledger",)):
        if not (cmd.help or "").strip():
            missing.append(path)
        for param in cmd.get_params(click.Context(cmd)):
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {'/'.join(param.opts)}")
    assert not missing, f"no help text: {missing}"


def test_commands_are_all_there() -> None:
    """The group has the commands the design names."""
    expected = {"init", "log", "show", "diff", "lineage", "artifact", "restore", "ref", "verify",
                "gc", "sync", "reindex", "run"}
    assert expected <= set(cli.commands)
    assert isinstance(cli.commands["ref"], click.Group)
    assert {"set", "get", "log", "rollback", "list"} <= set(cli.commands["ref"].commands)


def test_help_through_console_script() -> None:
    """``mlledger --help`` in a real process lists the commands and exits 0."""
    out = console("--help")
    assert out.returncode == 0, out.stderr
    for name in ("log", "show", "run", "verify", "ref"):
        assert name in out.stdout


def test_version() -> None:
    """``--version`` prints mlledger's version."""
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("mlledger ")


def test_unknown_command_is_one_line_exit_2() -> None:
    """A mistyped command is bad usage: exit 2 and one error line."""
    result = invoke("lgo")
    assert result.exit_code == 2
    assert "lgo" in one_error_line(result.stderr)


def test_bad_option_value_is_one_line_exit_2(shared: Shared) -> None:
    """A bad option value names the option, on one line, exit 2."""
    result = invoke("log", "-n", "many", url=shared.url)
    assert result.exit_code == 2
    assert "--limit" in one_error_line(result.stderr)


# ------------------------------------------------------------------ store selection


def test_unknown_protocol_store_url() -> None:
    """A store URL with an unknown protocol is bad input: one line, exit 2."""
    result = invoke("log", url="nosuchproto://bucket/x")
    assert result.exit_code == 2
    assert "nosuchproto" in one_error_line(result.stderr)


def test_unknown_protocol_store_url_console() -> None:
    """The same from the console script: one line on stderr, exit 2, no traceback."""
    out = console("log", url="nosuchproto://bucket/x")
    assert out.returncode == 2
    assert "unknown protocol" in one_error_line(out.stderr)


def test_reading_command_refuses_missing_store(tmp_path: Path) -> None:
    """A reading command on a URL with no store says so and creates nothing."""
    where = tmp_path / "nothing-here"
    result = invoke("log", url=str(where))
    assert result.exit_code == 2
    assert "mlledger init" in one_error_line(result.stderr)
    assert not where.exists()


def test_store_from_environment(shared: Shared) -> None:
    """``$MLLEDGER_URL`` picks the store when --store is not given."""
    result = invoke("log", "--json", env={"MLLEDGER_URL": shared.url})
    assert result.exit_code == 0, result.stderr
    assert {r["id"] for r in json.loads(result.stdout)} >= {shared.train1, shared.train2}


def test_storage_options_parse() -> None:
    """--option values decode as JSON when they parse, dotted keys nest, the rest are strings."""
    ctx = click.Context(cli)
    param = next(p for p in cli.params if p.name == "options")
    got = cli_options.parse_storage_options(
        ctx, param, ("anon=true", "n=3", "client_kwargs.endpoint_url=http://h:1", "name=abc")
    )
    assert got == {"anon": True, "n": 3, "client_kwargs": {"endpoint_url": "http://h:1"},
                   "name": "abc"}


def test_storage_option_without_equals_is_usage_error(shared: Shared) -> None:
    """--option without KEY=VALUE, or naming a Ledger option, is bad usage (exit 2)."""
    for bad in ("justakey", "capture_files=false"):
        result = invoke("--option", bad, "log", url=shared.url)
        assert result.exit_code == 2
        one_error_line(result.stderr)


def test_storage_options_reach_the_filesystem() -> None:
    """A memory:// store opened with --option works end to end (init, then log)."""
    url = f"memory://cli-{os.getpid()}-opts"
    try:
        assert invoke("--option", "skip_instance_cache=true", "init", url=url).exit_code == 0
        result = invoke("--option", "skip_instance_cache=true", "log", "--json", url=url)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == []
    finally:
        fsspec.filesystem("memory").rm(url, recursive=True)


# ------------------------------------------------------------------------------ init


def test_init_creates_then_reports_existing(tmp_path: Path) -> None:
    """init creates the store (JSON says created), a second init changes nothing."""
    url = str(tmp_path / "new-store")
    first = invoke("init", "--json", url=url)
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout) == {"url": url, "hash": "xxh128", "created": True}
    second = invoke("init", url=url)
    assert second.exit_code == 0
    assert "already" in second.stdout
    assert (tmp_path / "new-store" / "mlledger.json").is_file()


def test_init_other_algorithm_conflicts(tmp_path: Path) -> None:
    """Asking an existing xxh128 store for sha256 is refused on one line, exit 2."""
    url = str(tmp_path / "s")
    invoke("init", url=url)
    result = invoke("init", "--hash", "sha256", url=url)
    assert result.exit_code == 2
    assert "sha256" in one_error_line(result.stderr)


def test_init_console(tmp_path: Path) -> None:
    """``mlledger init --hash sha256`` in a real process makes a sha256 store."""
    url = str(tmp_path / "sha-store")
    out = console("init", "--hash", "sha256", url=url)
    assert out.returncode == 0, out.stderr
    assert "created" in out.stdout
    assert "sha256" in out.stdout
    assert json.loads((tmp_path / "sha-store" / "mlledger.json").read_text())["hash"] == "sha256"


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
                           "parent_id", "message", "user", "host", "tags", "params", "metrics"}
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


# --------------------------------------------------------------------------- restore


def test_restore_file_and_refuse_clobber(shared: Shared, tmp_path: Path) -> None:
    """restore writes the bytes; again without --force is refused (exit 2), with it replaces."""
    dest = tmp_path / "out" / "model.bin"
    result = invoke("restore", f"{shared.train1}/model.bin", str(dest), url=shared.url)
    assert result.exit_code == 0, result.stderr
    assert dest.read_bytes() == b"weights 0.1"
    assert "restored file" in result.stdout
    dest.write_bytes(b"changed")
    again = invoke("restore", f"{shared.train1}/model.bin", str(dest), url=shared.url)
    assert again.exit_code == 2
    assert "--force" in one_error_line(again.stderr)
    assert dest.read_bytes() == b"changed"
    forced = invoke("restore", "--force", "--json", shared.model1, str(dest), url=shared.url)
    assert forced.exit_code == 0, forced.stderr
    assert json.loads(forced.stdout) == {"target": shared.model1, "digest": shared.model1,
                                         "kind": "file", "size": 11, "path": str(dest)}
    assert dest.read_bytes() == b"weights 0.1"


def test_restore_to_stdout(shared: Shared) -> None:
    """DEST "-" writes a file's exact bytes to stdout and nothing else; a folder is refused."""
    out = console("restore", f"{shared.train1}/model.bin", "-", url=shared.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "weights 0.1"
    folder = invoke("restore", shared.bundle, "-", url=shared.url)
    assert folder.exit_code == 2
    assert "folder" in one_error_line(folder.stderr)


def test_restore_tree_with_progress_bar(
    shared: Shared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder restores whole; with stderr a terminal a progress bar is drawn there."""
    monkeypatch.setattr(cli_state, "stderr_is_terminal", lambda: True)
    dest = tmp_path / "bundle"
    result = invoke("restore", shared.export, str(dest), url=shared.url)
    assert result.exit_code == 0, result.stderr
    assert (dest / "big.bin").read_bytes() == shared.bundle_bytes
    assert (dest / "sub" / "b.txt").read_text() == "beta\n"
    assert "restore:" in result.stderr
    assert "/3" in result.stderr


def test_no_progress_bar_off_a_terminal() -> None:
    """Off a terminal there is no progress callback at all."""
    assert cli_state.progress("restore", "B") is None


def test_restore_console(shared: Shared, tmp_path: Path) -> None:
    """``mlledger restore @REF DEST`` in a real process; stderr stays quiet off a terminal."""
    dest = tmp_path / "prod.bin"
    out = console("restore", "@model/prod", str(dest), url=shared.url)
    assert out.returncode == 0, out.stderr
    assert dest.read_bytes() == b"weights 0.2"
    assert out.stderr == ""
    again = console("restore", "@model/prod", str(dest), url=shared.url)
    assert again.returncode == 2
    one_error_line(again.stderr)


# ------------------------------------------------------------------------------- ref


def test_ref_get_log_list(shared: Shared) -> None:
    """ref get prints the current target first; log is newest first; list has every ref."""
    got = invoke("ref", "get", "model/prod", url=shared.url)
    assert got.exit_code == 0, got.stderr
    assert got.stdout.split()[0] == shared.model2
    entry = json.loads(invoke("ref", "get", "--json", "model/prod", url=shared.url).stdout)
    assert set(entry) == {"name", "seq", "target", "at", "user", "host", "message", "action",
                          "restores", "run", "run_entry", "prev", "seal"}
    assert entry["seq"] == 2
    assert entry["run"] == shared.train2
    assert entry["message"] == "better"
    lines = invoke("ref", "log", "model/prod", url=shared.url).stdout.splitlines()
    assert lines[0].startswith("#2")
    assert lines[1].startswith("#1")
    history = json.loads(invoke("ref", "log", "--json", "model/prod", url=shared.url).stdout)
    assert [e["seq"] for e in history] == [1, 2]
    listed = json.loads(invoke("ref", "list", "--json", url=shared.url).stdout)
    assert [(e["name"], e["target"]) for e in listed] == [("model/prod", shared.model2)]
    assert "model/prod" in invoke("ref", "list", url=shared.url).stdout


def test_ref_set_and_rollback(store_copy: str) -> None:
    """ref set appends; rollback goes back, to a #SEQ, or to a target; history only grows."""
    ids = [r["id"] for r in runs_in(store_copy)]
    prep = ids[-1]
    made = invoke("ref", "set", "data/raw", f"{prep}/raw.csv", "-m", "raw data", url=store_copy)
    assert made.exit_code == 0, made.stderr
    assert made.stdout.startswith("data/raw -> xxh128:")
    assert "(#1)" in made.stdout
    back = json.loads(invoke("ref", "rollback", "--json", "model/prod", url=store_copy).stdout)
    assert back["seq"] == 3
    assert back["action"] == "rollback"
    assert back["restores"] == 1
    forward = json.loads(
        invoke("ref", "rollback", "--to", "#2", "--json", "model/prod", url=store_copy).stdout)
    assert forward["restores"] == 2
    to_target = invoke("ref", "rollback", "--to", f"{prep}/data.csv", "model/prod", "-m", "why",
                       url=store_copy)
    assert to_target.exit_code == 0, to_target.stderr
    history = json.loads(invoke("ref", "log", "--json", "model/prod", url=store_copy).stdout)
    assert [e["seq"] for e in history] == [1, 2, 3, 4, 5]
    assert history[-1]["message"] == "why"
    assert history[-1]["run"] == prep  # the run that made the target, also on a rollback
    assert history[2]["run"] == history[0]["run"]
    for args in (("log", "model/prod"), ("get", "model/prod"), ("list",)):
        assert f"run {prep}" in invoke("ref", *args, url=store_copy).stdout, args


def test_ref_errors(shared: Shared) -> None:
    """An unset ref and a bad ref name are one-line errors, exit 2."""
    unset = invoke("ref", "get", "no/such", url=shared.url)
    assert unset.exit_code == 2
    line = one_error_line(unset.stderr)
    assert "no/such" in line
    assert "mlledger ref set no/such TARGET" in line
    assert "the refs: model/prod" in line
    typo = invoke("ref", "get", "model/prd", url=shared.url)
    assert "did you mean 'model/prod'?" in one_error_line(typo.stderr)
    bad = invoke("ref", "set", "bad name", shared.model1, url=shared.url)
    assert bad.exit_code == 2
    one_error_line(bad.stderr)


def test_ref_console(store_copy: str) -> None:
    """ref set, get, log, rollback and list, each in a real process."""
    first = runs_in(store_copy)[-1]["id"]
    set_ = console("ref", "set", "x/y", f"{first}/data.csv", url=store_copy)
    assert set_.returncode == 0, set_.stderr
    get = console("ref", "get", "--json", "x/y", url=store_copy)
    assert json.loads(get.stdout)["seq"] == 1
    rollback = console("ref", "rollback", "model/prod", url=store_copy)
    assert rollback.returncode == 0, rollback.stderr
    log = console("ref", "log", "model/prod", url=store_copy)
    assert log.stdout.splitlines()[0].startswith("#3")
    listed = console("ref", "list", url=store_copy)
    assert [ln.split()[0] for ln in listed.stdout.splitlines()] == ["model/prod", "x/y"]


# ---------------------------------------------------------------------------- verify


def _corrupt(url: str, digest: str) -> None:
    path = Path(url) / Ledger(url).store.key(digest)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_verify_clean(shared: Shared) -> None:
    """A sound store verifies: exit 0, 'ok', JSON ok true."""
    result = invoke("verify", url=shared.url)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert ": ok" in result.stdout
    data = json.loads(invoke("verify", "--json", url=shared.url).stdout)
    assert data["ok"] is True
    assert data["checked"] > 5
    assert set(data) == {"ok", "checked", "corrupt", "missing", "dangling", "problems",
                         "trail", "unchained", "damaged"}
    assert (data["trail"], data["unchained"], data["damaged"]) == ([], 0, [])


def test_verify_finds_corruption(store_copy: str, shared: Shared) -> None:
    """A flipped byte: exit 1, the object listed as corrupt (text and JSON)."""
    _corrupt(store_copy, shared.model1)
    result = invoke("verify", url=store_copy)
    assert result.exit_code == 1
    assert f"corrupt   {shared.model1}" in result.stdout
    data = json.loads(invoke("verify", "--json", url=store_copy).stdout)
    assert data["ok"] is False
    assert data["corrupt"] == [shared.model1]


def test_restore_of_corrupt_object_fails_check(store_copy: str, shared: Shared,
                                               tmp_path: Path) -> None:
    """Restoring a corrupt object writes nothing and exits 1 (a failed check), one line."""
    _corrupt(store_copy, shared.model1)
    dest = tmp_path / "m.bin"
    result = invoke("restore", shared.model1, str(dest), url=store_copy)
    assert result.exit_code == 1
    assert "corrupt" in one_error_line(result.stderr)
    assert not dest.exists()
    to_stdout = invoke("restore", shared.model1, "-", url=store_copy)
    assert to_stdout.exit_code == 1
    assert "corrupt" in one_error_line(to_stdout.stderr)
    assert to_stdout.stdout_bytes == b""  # not one unverified byte went out


def test_restore_to_stdout_of_a_large_corrupt_object_writes_nothing(tmp_path: Path) -> None:
    """``restore TARGET -`` of a damaged 3 MiB object emits no byte at all, and exits 1."""
    url = str(tmp_path / "store")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    digest = Ledger(url).store.put(big).digest
    path = Path(url) / Ledger(url).store.key(digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # damage at the very end: the first 3 MiB still read fine
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    out = subprocess.run([MLLEDGER or "mlledger", "--store", url, "restore", digest, "-"],
                         capture_output=True, timeout=60, check=False)
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"corrupt" in out.stderr


def test_verify_console(store_copy: str, shared: Shared) -> None:
    """``mlledger verify`` in a real process: 0 when sound, 1 after corruption."""
    assert console("verify", url=store_copy).returncode == 0
    _corrupt(store_copy, shared.data)
    out = console("verify", "--json", url=store_copy)
    assert out.returncode == 1
    assert json.loads(out.stdout)["corrupt"] == [shared.data]


# -------------------------------------------------------------------------------- gc


def test_gc_dry_run_by_default(store_copy: str, shared: Shared) -> None:
    """gc only reports unless --delete: nothing disappears."""
    result = invoke("gc", "--keep-days", "0", "--grace", "0", "-v", url=store_copy)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("would delete 2 runs")
    assert f"run     {shared.failed}" in result.stdout
    assert "--delete" in result.stderr
    assert len(runs_in(store_copy)) == 5


def test_gc_delete(store_copy: str, shared: Shared) -> None:
    """gc --delete removes what no ref or kept run needs; the ref's lineage stays."""
    result = invoke("gc", "--delete", "--keep-days", "0", "--grace", "0", "--json", url=store_copy)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is False
    assert set(report["runs"]) == {shared.failed, shared.export}
    assert shared.bundle in report["objects"]
    left = {r["id"] for r in runs_in(store_copy)}
    assert left == {shared.prep, shared.train1, shared.train2}
    assert invoke("verify", url=store_copy).exit_code == 0


def test_gc_console(store_copy: str) -> None:
    """``mlledger gc --json`` in a real process: a dry run by default."""
    out = console("gc", "--json", url=store_copy)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["dry_run"] is True
    assert report["runs"] == []


# ------------------------------------------------------------------- sync, reindex


def test_sync_and_reindex(shared: Shared) -> None:
    """sync reports changed runs; reindex rebuilds the catalog and counts runs."""
    synced = json.loads(invoke("sync", "--json", url=shared.url).stdout)
    assert synced == {"changed": 5}
    assert json.loads(invoke("reindex", "--json", url=shared.url).stdout) == {"runs": 5}
    assert invoke("reindex", url=shared.url).stdout.strip() == "catalog rebuilt: 5 runs"


def test_sync_and_reindex_console(shared: Shared) -> None:
    """``mlledger sync`` and ``mlledger reindex`` in real processes."""
    out = console("sync", url=shared.url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("catalog synced")
    out = console("reindex", "--json", url=shared.url)
    assert json.loads(out.stdout) == {"runs": 5}


# ------------------------------------------------------------------------------- run


def _only_run(url: str) -> dict[str, Any]:
    runs = runs_in(url)
    assert len(runs) == 1, runs
    result = invoke("show", "--json", runs[0]["id"], url=url)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_run_script_full_capture(workdir: Path, tmp_path: Path) -> None:
    """A script runs in-process as one run: argv params, reads, writes, code digest, metrics."""
    url = str(tmp_path / "store")
    result = invoke("run", "-m", "first try", "--tag", "team=cv", "train.py", "--lr", "0.5",
                    url=url)
    assert result.exit_code == 0, result.stderr
    assert "trained 0.5" in result.stdout
    assert "finished" in result.stderr
    rec = _only_run(url)
    assert rec["name"] == "train"
    assert rec["kind"] == "script"
    assert rec["status"] == "finished"
    assert rec["params"] == {"argv": ["train.py", "--lr", "0.5"]}
    assert rec["message"] == "first try"
    assert rec["tags"] == {"team": "cv"}
    assert set(rec["inputs"]) == {"train.py", "data.csv"}
    assert set(rec["outputs"]) == {"model.txt"}
    assert rec["code"]["source_digest"] == rec["inputs"]["train.py"]["digest"]
    assert rec["metrics"]["loss"]["last"] == 2.0
    assert rec["environment"]["process"]["argv"] == ["train.py", "--lr", "0.5"]
    assert sys.argv[0] != "train.py"


def test_run_script_options_after_script_are_its_own(workdir: Path, tmp_path: Path) -> None:
    """After the script, options belong to it; '--' also ends mlledger's options."""
    url = str(tmp_path / "store")
    result = invoke("run", "--name", "custom", "--", "train.py", "--name", "x", url=url)
    assert result.exit_code == 0, result.stderr
    rec = _only_run(url)
    assert rec["name"] == "custom"
    assert rec["params"]["argv"] == ["train.py", "--name", "x"]


def test_run_script_exit_status(workdir: Path, tmp_path: Path) -> None:
    """sys.exit(3) in the script: the run failed, the CLI exits 3; exit 0 is success."""
    url = str(tmp_path / "store")
    result = invoke("run", "train.py", "--exit", "3", url=url)
    assert result.exit_code == 3
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert rec["error"]["type"] == "SystemExit"
    ok = invoke("run", "-q", "train.py", "--exit", "0", url=url)
    assert ok.exit_code == 0
    assert ok.stderr == ""


def test_run_script_exception(workdir: Path, tmp_path: Path) -> None:
    """An exception in the script: traceback printed from the script's frame, run failed, exit 1."""
    url = str(tmp_path / "store")
    result = invoke("run", "train.py", "--raise", url=url)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: the script broke" in result.stderr
    assert "runpy" not in result.stderr
    assert "click" not in result.stderr
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert rec["error"]["type"] == "ValueError"
    assert "train.py" in rec["error"]["traceback"]


def test_run_script_imports_modules_beside_it(workdir: Path, tmp_path: Path) -> None:
    """The script's folder comes first on sys.path, as with ``python sub/main.py``."""
    sub = workdir / "sub"
    sub.mkdir()
    (sub / "helper.py").write_text("VALUE = 42\n")
    (sub / "main.py").write_text("import helper\nprint('value', helper.VALUE)\n")
    url = str(tmp_path / "store")
    result = invoke("run", "sub/main.py", url=url)
    assert result.exit_code == 0, result.stderr
    assert "value 42" in result.stdout
    assert str(sub) not in sys.path
    assert _only_run(url)["name"] == "main"


def test_diff_of_script_runs_counts_argv_once(workdir: Path, tmp_path: Path) -> None:
    """Two runs of one script with other arguments: argv changes once, under params."""
    url = str(tmp_path / "store")
    assert invoke("run", "-q", "train.py", "--lr", "0.5", url=url).exit_code == 0
    assert invoke("run", "-q", "train.py", "--lr", "0.25", url=url).exit_code == 0
    new, old = (r["id"] for r in runs_in(url))
    changes = json.loads(invoke("diff", "--json", old, new, url=url).stdout)["changes"]
    argv = [c for c in changes if c["key"] == "argv"]
    assert argv == [{"section": "params", "key": "argv", "kind": "changed",
                     "old": ["train.py", "--lr", "0.5"], "new": ["train.py", "--lr", "0.25"]}]
    assert {c["section"] for c in changes} <= {"params", "metrics", "outputs"}


def test_run_missing_script(workdir: Path, tmp_path: Path) -> None:
    """A script that is not there: exit 2, one line, no run recorded."""
    url = str(tmp_path / "store")
    result = invoke("run", "nope.py", url=url)
    assert result.exit_code == 2
    assert "nope.py" in one_error_line(result.stderr)


def test_run_disabled_records_nothing(workdir: Path, tmp_path: Path) -> None:
    """With MLLEDGER_DISABLE=1 the script just runs; no store is even made."""
    url = tmp_path / "store"
    result = invoke("run", "train.py", url=str(url), env={"MLLEDGER_DISABLE": "1"})
    assert result.exit_code == 0, result.stderr
    assert "trained" in result.stdout
    assert not url.exists()


def test_run_command_inputs_outputs(workdir: Path, tmp_path: Path) -> None:
    """A program runs as a subprocess; --input stored at start, --output at the end."""
    url = str(tmp_path / "store")
    result = invoke("run", "--input", "data.csv", "--output", "copy.csv", "--",
                    "cp", "data.csv", "copy.csv", url=url)
    assert result.exit_code == 0, result.stderr
    rec = _only_run(url)
    assert rec["name"] == "cp"
    assert rec["kind"] == "command"
    assert rec["status"] == "finished"
    assert rec["params"] == {"argv": ["cp", "data.csv", "copy.csv"]}
    assert rec["inputs"]["data.csv"]["digest"] == rec["outputs"]["copy.csv"]["digest"]


def test_run_command_exit_code_is_passed_on(workdir: Path, tmp_path: Path) -> None:
    """The program's exit status becomes the CLI's and fails the run."""
    url = str(tmp_path / "store")
    result = invoke("run", "--", "sh", "-c", "exit 7", url=url)
    assert result.exit_code == 7
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert "status 7" in rec["error"]["message"]


def test_run_command_missing_output_fails(workdir: Path, tmp_path: Path) -> None:
    """A declared output a successful program did not write: run failed, exit 1."""
    url = str(tmp_path / "store")
    result = invoke("run", "--output", "never.txt", "--", "true", url=url)
    assert result.exit_code == 1
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert "never.txt" in rec["error"]["message"]


def test_run_command_errors_before_start(workdir: Path, tmp_path: Path) -> None:
    """An unknown program or a missing --input is bad input: exit 2, nothing recorded."""
    url = tmp_path / "store"
    unknown = invoke("run", "--", "no-such-program-here", url=str(url))
    assert unknown.exit_code == 2
    assert "command not found" in one_error_line(unknown.stderr)
    missing = invoke("run", "--input", "gone.csv", "--", "true", url=str(url))
    assert missing.exit_code == 2
    one_error_line(missing.stderr)
    assert not url.exists()


def test_run_exec_flag_runs_py_as_program(workdir: Path, tmp_path: Path) -> None:
    """--exec runs a .py file as a subprocess, with the file as code identity and input."""
    tool = workdir / "tool.py"
    tool.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(0)\n")
    tool.chmod(0o755)
    url = str(tmp_path / "store")
    result = invoke("run", "--exec", "--", "./tool.py", url=url)
    assert result.exit_code == 0, result.stderr
    rec = _only_run(url)
    assert rec["kind"] == "command"
    assert rec["code"]["file"] == "tool.py"
    assert rec["code"]["module_digest"] == rec["inputs"]["tool.py"]["digest"]


def test_run_script_console(workdir: Path, tmp_path: Path) -> None:
    """``mlledger run train.py ...`` in a real process: output passes through, run recorded."""
    url = str(tmp_path / "store")
    out = console("run", "train.py", "--lr", "0.25", url=url, cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "trained 0.25"
    rec = _only_run(url)
    assert rec["params"]["argv"] == ["train.py", "--lr", "0.25"]
    assert set(rec["outputs"]) == {"model.txt"}
    failed = console("run", "train.py", "--raise", url=url, cwd=workdir)
    assert failed.returncode == 1
    assert "ValueError: the script broke" in failed.stderr


def test_run_command_console(workdir: Path, tmp_path: Path) -> None:
    """``mlledger run -- COMMAND`` in a real process: exit status passed on, outputs stored."""
    url = str(tmp_path / "store")
    out = console("run", "--output", "o.txt", "--", "sh", "-c", "echo hi > o.txt; exit 4",
                  url=url, cwd=workdir)
    assert out.returncode == 4
    rec = _only_run(url)
    assert rec["status"] == "failed"
    assert "o.txt" in rec["outputs"]


def test_nested_runs_go_to_the_same_store(workdir: Path, tmp_path: Path) -> None:
    """A script's own mlledger runs go to the --store store, as children of the script run."""
    (workdir / "nested.py").write_text(
        "import mlledger\nwith mlledger.run('inner') as r:\n    r.log(step=0, x=1)\n"
    )
    url = str(tmp_path / "store")
    result = invoke("run", "nested.py", url=url)
    assert result.exit_code == 0, result.stderr
    runs = {r["name"]: r for r in runs_in(url)}
    assert set(runs) == {"nested", "inner"}
    assert runs["inner"]["parent_id"] == runs["nested"]["id"]
    assert "MLLEDGER_URL" not in os.environ


# ---------------------------------------------------------------------- error paths


def test_debug_shows_traceback(shared: Shared) -> None:
    """--debug prints the traceback before the one-line error."""
    result = invoke("--debug", "show", "ZZZZZZZZ", url=shared.url)
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("mlledger: error: ")


def test_internal_error_is_one_line_exit_1(shared: Shared, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception is reported as a bug on one line, exit 1."""
    def broken(self: Ledger) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(Ledger, "sync", broken)
    result = invoke("sync", url=shared.url)
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "internal error" in line
    assert "kaboom" in line
    assert "--debug" in line
