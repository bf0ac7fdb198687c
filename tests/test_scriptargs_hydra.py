"""A Hydra app's composed config as params under ``mlledger run`` (mlledger.integrations.hydra).

Real Hydra apps, with config files written here, run by the real console script in
a subprocess on a local store; the store is read back with the public API.
"""

from __future__ import annotations

import enum
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest
from helpers.cli import console, invoke
from omegaconf import OmegaConf

from mlledger import Ledger
from mlledger.capture.redact import REDACTED
from mlledger.integrations.hydra import LedgerCallback, config_params
from mlledger.integrations.scriptargs import ScriptArgs

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os, pathlib
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path
    import mlledger

    if os.environ.get("OWN_EPOCHS"):  # the script gives the run a param itself
        mlledger.current_run().log_params(epochs=int(os.environ["OWN_EPOCHS"]))

    @hydra.main(config_path="conf", config_name="config", version_base=None)
    def main(cfg):
        rows = pathlib.Path(to_absolute_path(cfg.data)).read_text().splitlines()
        pathlib.Path("model.txt").write_text(f"{cfg.lr} {cfg.model.depth} {len(rows)}")
        # a file the task writes into Hydra's output folder on purpose
        out = pathlib.Path(HydraConfig.get().runtime.output_dir)
        (out / "report.txt").write_text(f"rows={len(rows)}")
        mlledger.current_run().log(step=1, loss=cfg.lr * 2)
        if cfg.fail:
            raise ValueError("the task broke")

    if __name__ == "__main__":
        main()
    """
)

CONFIG = textwrap.dedent(
    """
    defaults:
      - model: small
      - _self_
    lr: 0.1
    epochs: 3
    tag: ${model.name}-lr${lr}
    data: data.csv
    layers: [64, 64]
    fail: false
    db: {user: me, password: hunter2}
    """
)

PLAIN = textwrap.dedent(
    """
    import argparse, sys
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.parse_args()
    print("hydra imported:", "hydra" in sys.modules)
    """
)


def _project(work: Path) -> Path:
    work.mkdir()
    (work / "conf" / "model").mkdir(parents=True)
    (work / "conf" / "config.yaml").write_text(CONFIG)
    (work / "conf" / "model" / "small.yaml").write_text("name: small\ndepth: 2\nwidth: 64\n")
    (work / "conf" / "model" / "big.yaml").write_text("name: big\ndepth: 8\nwidth: 512\n")
    (work / "data.csv").write_text("a,b\n1,2\n")
    (work / "train.py").write_text(APP)
    (work / "plain.py").write_text(PLAIN)
    return work


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A folder with a Hydra app (train.py, conf/ with a model group) and its data."""
    return _project(tmp_path / "work")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store with two runs of the app: a group, overrides and +extra; then lr=0.05."""
    work = _project(tmp_path_factory.mktemp("hydra") / "work")
    url = str(work.parent / "store")
    out = console("run", "train.py", "lr=0.2", "model=big", "model.depth=3", "+extra=1",
                  url=url, cwd=work)
    assert out.returncode == 0, out.stderr
    out = console("run", "train.py", "lr=0.05", url=url, cwd=work, OWN_EPOCHS="99")
    assert out.returncode == 0, out.stderr
    return work, url


def _hydra_files(names: Iterable[str]) -> list[str]:
    """Hydra's own files among artifact names: its .hydra/ folder, job log, multirun.yaml."""
    return [n for n in names if ".hydra" in n or n.endswith((".log", "multirun.yaml"))]


def test_the_composed_config_becomes_typed_params(two_runs: tuple[Path, str]) -> None:
    """Defaults, a group choice, overrides and +extra, interpolation resolved; argv stays."""
    _, url = two_runs
    run = Ledger(url).runs(where="params.lr = 0.2")[0]
    assert run.status == "finished", run.warnings
    assert run.params["argv"] == ["train.py", "lr=0.2", "model=big", "model.depth=3", "+extra=1"]
    assert run.params["lr"] == 0.2
    assert isinstance(run.params["lr"], float)
    assert run.params["epochs"] == 3
    assert run.params["model"] == {"name": "big", "depth": 3, "width": 512}
    assert run.params["extra"] == 1
    assert run.params["tag"] == "big-lr0.2"  # ${model.name}-lr${lr}
    assert run.params["layers"] == [64, 64]
    assert run.params["fail"] is False
    assert run.params["db"] == {"user": "me", "password": REDACTED}  # a secret-looking key
    assert "hydra" not in run.params
    assert "overrides" not in run.params  # Hydra's own parser is no params
    assert {"conf/config.yaml", "conf/model/big.yaml", "data.csv"} <= set(run.inputs)
    assert "model.txt" in run.outputs
    # what the task wrote into Hydra's output folder is an output; Hydra's own files not
    (report,) = [n for n in run.outputs if n.endswith("/report.txt")]
    assert report.startswith("outputs/")
    assert _hydra_files(run.outputs) == []
    assert run.metrics["loss"] == 0.4


def test_config_params_are_queried_and_diffed(two_runs: tuple[Path, str]) -> None:
    """where params.model.depth = 3 picks one run; diff names model.depth and lr."""
    _, url = two_runs
    ledger = Ledger(url)
    (deep,) = ledger.runs(where="params.model.depth = 3")
    (low,) = ledger.runs(where="params.lr < 0.1")
    assert low.params["model"] == {"name": "small", "depth": 2, "width": 64}
    changes = {(c.section, c.key): (c.old, c.new) for c in ledger.diff(low, deep)}
    assert changes[("params", "model.depth")] == (2, 3)
    assert changes[("params", "lr")] == (0.05, 0.2)
    assert changes[("params", "model.name")] == ("small", "big")
    out = invoke("log", "--where", "params.model.depth = 3", url=url)
    assert out.exit_code == 0, out.output
    assert deep.id[:12] in out.stdout
    assert low.id[:12] not in out.stdout
    out = invoke("diff", low.id, deep.id, url=url)
    assert out.exit_code == 0, out.output
    assert "model.depth: 2 -> 3" in out.stdout


def test_the_scripts_own_param_wins(two_runs: tuple[Path, str]) -> None:
    """A param the script logged before Hydra ran is not replaced by the config's value."""
    _, url = two_runs
    (low,) = Ledger(url).runs(where="params.lr < 0.1")
    assert low.params["epochs"] == 99


def test_multirun_jobs_are_child_runs(app: Path, tmp_path: Path) -> None:
    """-m lr=0.1,0.2 with chdir: one child run per job with its params, config files, the
    files the task read and wrote, and its metrics."""
    url = str(tmp_path / "store")
    out = console("run", "train.py", "-m", "lr=0.1,0.2", "model=big", "hydra.job.chdir=True",
                  url=url, cwd=app)
    assert out.returncode == 0, out.stderr
    ledger = Ledger(url)
    (parent,) = [r for r in ledger.runs() if r.parent_id is None]
    jobs = sorted(ledger.runs(where=f"name = '{parent.name}'"), key=lambda r: r.id)
    jobs = [r for r in jobs if r.parent_id == parent.id]
    assert [j.params["lr"] for j in jobs] == [0.1, 0.2]
    assert [j.tags["hydra_job"] for j in jobs] == ["0", "1"]
    assert parent.params == {
        "argv": ["train.py", "-m", "lr=0.1,0.2", "model=big", "hydra.job.chdir=True"]
    }
    assert "conf/config.yaml" in parent.inputs
    for num, job in enumerate(jobs):
        assert job.status == "finished", job.warnings
        assert job.params["model"] == {"name": "big", "depth": 8, "width": 512}
        # the files Hydra composed the job's config from
        assert {"conf/config.yaml", "conf/model/big.yaml"} <= set(job.inputs)
        assert job.metrics["loss"] == pytest.approx(job.params["lr"] * 2)
        assert "data.csv" in job.inputs  # read through to_absolute_path after the chdir
        assert sorted(n.rsplit("/", 1)[-1] for n in job.outputs) == ["model.txt", "report.txt"]
        for name in job.outputs:  # named from the folder mlledger run started in
            assert name.startswith("multirun/")
            assert f"/{num}/" in name
    assert _hydra_files([*parent.outputs, *jobs[0].outputs, *jobs[1].outputs]) == []
    changes = {(c.section, c.key) for c in ledger.diff(jobs[0], jobs[1])}
    assert ("params", "lr") in changes
    assert ("params", "model.depth") not in changes


@pytest.mark.parametrize(
    ("flag", "says", "printed"),
    [
        (["--help"], "--help printed the app's help", "train is powered by Hydra"),
        (["--cfg", "job"], "--cfg printed the config", "depth: 2"),
        (["--info"], "--info printed information about the app", "Hydra"),
    ],
)
def test_help_cfg_and_info_run_no_task_and_say_so(
    app: Path, tmp_path: Path, flag: list[str], says: str, printed: str
) -> None:
    """Hydra prints and exits 0: a finished run, argv only, a warning naming the flag."""
    url = str(tmp_path / "store")
    out = console("run", "train.py", *flag, url=url, cwd=app)
    assert out.returncode == 0, out.stderr
    assert printed in out.stdout
    (run,) = Ledger(url).runs()
    assert run.status == "finished"
    assert set(run.params) == {"argv"}
    assert any(
        f"Hydra parser ended the script (exit status 0): {says}; no task ran" in w
        for w in run.warnings
    ), run.warnings


def test_a_bad_override_fails_the_run_with_hydras_message(app: Path, tmp_path: Path) -> None:
    """nosuch=1 without +: status 1 to the shell, a failed run quoting Hydra's reason."""
    url = str(tmp_path / "store")
    out = console("run", "train.py", "nosuch=1", url=url, cwd=app)
    assert out.returncode == 1
    assert "Could not override 'nosuch'" in out.stderr
    (run,) = Ledger(url).runs()
    assert run.status == "failed"
    assert any(
        "Hydra parser refused the command line (exit status 1): Could not override 'nosuch'"
        in w and "+nosuch=1" in w
        for w in run.warnings
    ), run.warnings


def test_a_failing_task_is_named_in_a_warning(app: Path, tmp_path: Path) -> None:
    """The task raises: status 1, the run failed with its params and the task's error named."""
    url = str(tmp_path / "store")
    out = console("run", "train.py", "fail=true", url=url, cwd=app)
    assert out.returncode == 1
    (run,) = Ledger(url).runs()
    assert run.status == "failed"
    assert run.params["fail"] is True
    assert any("the Hydra task raised ValueError: the task broke" in w for w in run.warnings)


def test_a_script_without_hydra_does_not_import_it(app: Path, tmp_path: Path) -> None:
    """An argparse script: Hydra stays unimported and its arguments are params as before."""
    url = str(tmp_path / "store")
    out = console("run", "plain.py", "--lr", "0.3", url=url, cwd=app)
    assert out.returncode == 0, out.stderr
    assert "hydra imported: False" in out.stdout
    (run,) = Ledger(url).runs()
    assert run.params == {"argv": ["plain.py", "--lr", "0.3"], "lr": 0.3}


class _Color(enum.Enum):
    RED = 1


def test_config_params_resolve_and_name_what_they_skip() -> None:
    """Interpolations resolve, enums and paths become text, ??? and a broken ${} are named."""
    cfg = OmegaConf.create(
        {
            "a": 1,
            "b": "${a}",
            "nest": {"c": "${b}", "color": _Color.RED, "p": Path("x/y")},
            "todo": "???",
            "bad": "${nowhere}",
            "hydra": {"run": 1},
        }
    )
    values, skipped = config_params(cfg)
    assert values == {"a": 1, "b": 1, "nest": {"c": 1, "color": "RED", "p": "x/y"}}
    assert skipped[0] == "todo (no value: ???)"
    assert skipped[1].startswith("bad (")
    assert "nowhere" in skipped[1]


def test_the_callback_does_nothing_without_a_hook() -> None:
    """Outside mlledger run (or in another process) Hydra's callback records nothing."""

    class _Ended:
        active = False

    with ScriptArgs(_Ended()) as args:
        args.hydra_parsed(object())  # an ended run: no hook is made
        assert args.hydra is None
    cb = LedgerCallback()
    cb.on_run_start(OmegaConf.create({}))
    cb.on_job_end(OmegaConf.create({}), job_return=None)  # type: ignore[arg-type]
