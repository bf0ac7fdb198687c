"""Opt-in sampling of CPU and memory as metrics of a run (mlledger.runs.sampler)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers.cli import invoke, make_workdir, one_error_line
from helpers.nvml import FAKE_NVML

from mlledger import Ledger
from mlledger.errors import UsageError
from mlledger.runs import sampler

SYS = ("sys.cpu_percent", "sys.rss_bytes")


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def _wait_stopped(timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sampler.thread() is None:
            return True
        time.sleep(0.01)
    return False


def test_sampled_run_has_sensible_metrics(ledger: Ledger) -> None:
    """A sampled run records sys.cpu_percent and sys.rss_bytes as ordinary metrics, read
    back from the store: the CPU the samples add up to is the CPU the run's resources
    measured, an idle run samples near 0 %, and the run's own steps are untouched."""
    with ledger.run("busy", sample=0.1) as run:
        for i in range(5):
            run.log(loss=1.0 / (i + 1))
            _busy(0.1)
    got = ledger.get(run.id)
    assert set(SYS) <= set(got.metrics)
    hist = got.metric_history("sys.cpu_percent")
    cpu = [v for _, v, _ in hist]
    assert len(cpu) >= 3
    assert min(cpu) >= 0
    assert max(cpu) < 100 * (os.cpu_count() or 1) + 50
    times = [t for _, _, t in hist]
    spans = [times[0] - got.started_at.timestamp()]
    spans += [b - a for a, b in itertools.pairwise(times)]
    covered = sum(p / 100 * s for p, s in zip(cpu, spans, strict=True))
    measured = got.resources["cpu_user_s"] + got.resources["cpu_system_s"]
    assert covered == pytest.approx(measured, abs=0.05 + 0.3 * measured)
    rss = [v for _, v, _ in got.metric_history("sys.rss_bytes")]
    assert all(2**20 < r < 2**40 for r in rss)
    assert max(rss) <= got.resources["peak_rss_bytes"] * 1.01
    steps = [s for s, _, _ in hist]
    assert steps == list(range(len(steps)))
    assert [s for s, _, _ in got.metric_history("loss")] == [0, 1, 2, 3, 4]
    assert not [w for w in got.warnings if "sys." in w]
    with ledger.run("idle", sample=0.1) as idle:
        time.sleep(0.35)
    idle_cpu = [v for _, v, _ in ledger.get(idle.id).metric_history("sys.cpu_percent")]
    assert len(idle_cpu) >= 3
    assert sorted(idle_cpu)[len(idle_cpu) // 2] < 20  # a sleeping process uses next to none


def test_unsampled_run_has_no_sys_metrics_and_no_thread(ledger: Ledger) -> None:
    """Without sample= no sampling thread starts and the run has no sys.* metric."""
    assert _wait_stopped()
    with ledger.run("plain") as run:
        assert sampler.thread() is None
        assert "mlledger-sampler" not in [t.name for t in threading.enumerate()]
        _busy(0.05)
    assert not [k for k in ledger.get(run.id).metrics if k.startswith("sys.")]


def test_thread_shared_and_stops_with_the_last_sampled_run(ledger: Ledger) -> None:
    """Sampled runs at once share one thread; it ends when the last of them ends."""
    assert _wait_stopped()
    a = ledger.run("a", sample=0.05)
    b = ledger.run("b", sample=0.2)
    ra = a.__enter__()
    t1 = sampler.thread()
    assert t1 is not None
    with ledger.run("inner", sample=0.05):
        assert sampler.thread() is t1
    rb = b.__enter__()
    assert sampler.thread() is t1
    time.sleep(0.3)
    b.__exit__(None, None, None)
    assert sampler.thread() is t1  # a still samples
    a.__exit__(None, None, None)
    assert _wait_stopped(2.0)
    names = [t.name for t in threading.enumerate()]
    assert names.count("mlledger-sampler") == 0
    assert len(ledger.get(ra.id).metric_history("sys.cpu_percent")) >= 3
    assert len(ledger.get(rb.id).metric_history("sys.cpu_percent")) >= 1


def test_short_run_gets_one_sample_at_its_end(ledger: Ledger) -> None:
    """A run shorter than its interval still gets one sample, taken when it ends."""
    with ledger.run("short", sample=60) as run:
        _busy(0.05)
    hist = ledger.get(run.id).metric_history("sys.rss_bytes")
    assert len(hist) == 1


def test_tracked_sample_option(ledger: Ledger) -> None:
    """@ledger.tracked(sample=...) samples every call."""

    @ledger.tracked(sample=0.05)
    def work() -> int:
        _busy(0.2)
        return 1

    work()
    run = ledger.runs(name=work.__qualname__)[0]
    assert len(run.metric_history("sys.cpu_percent")) >= 2


@pytest.mark.parametrize("bad", [-1, "10", float("nan"), 0.001, True])
def test_bad_sample_is_refused(ledger: Ledger, bad: object) -> None:
    """A sample that is not a number of seconds >= 0.01 is a UsageError saying what to
    pass, before any run starts."""
    with pytest.raises(UsageError, match="sample is the seconds between samples"):
        ledger.run("x", sample=bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="sample"):
        ledger.tracked(sample=bad)(lambda: None)
    assert list(ledger.runs()) == []


def test_cli_run_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mlledger run --sample 0.05 script.py records sys.* metrics; a bad --sample exits 2
    with one line."""
    make_workdir(tmp_path, monkeypatch)
    Path("spin.py").write_text(
        "import time\nend = time.perf_counter() + 0.4\n"
        "while time.perf_counter() < end:\n    pass\n"
    )
    url = str(tmp_path / "store")
    result = invoke("run", "--sample", "0.05", "-q", "spin.py", url=url)
    assert result.exit_code == 0, result.output
    runs = json.loads(invoke("log", "--json", url=url).stdout)
    assert "sys.cpu_percent" in runs[0]["metrics"]
    cpu = Ledger(url).get(runs[0]["id"]).metric_history("sys.cpu_percent")
    assert max(v for _, v, _ in cpu) > 0
    bad = invoke("run", "--sample", "-3", "spin.py", url=url)
    assert bad.exit_code == 2
    assert "sample" in one_error_line(bad.stderr)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="program figures come from /proc")
def test_cli_run_sample_follows_the_program(tmp_path: Path) -> None:
    """mlledger run --sample on a program samples the program's process: its CPU (a busy
    child near 100 %, while mlledger only waits) and its own memory; the run's CPU time
    counts the child's too."""
    url = str(tmp_path / "store")
    spin = "import time\nend = time.perf_counter() + 0.6\nwhile time.perf_counter() < end: pass\n"
    (tmp_path / "spin.txt").write_text(spin)
    from helpers.cli import console

    done = console(
        "run", "--sample", "0.1", "-q", "--exec", "--", sys.executable, "spin.txt",
        url=url, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    run = Ledger(url).runs()[0]
    cpu = [v for _, v, _ in run.metric_history("sys.cpu_percent")]
    assert len(cpu) >= 3
    assert max(cpu) > 50
    assert run.resources["cpu_user_s"] + run.resources["cpu_system_s"] > 0.3


@pytest.mark.slow
def test_fork_child_has_no_sampler(tmp_path: Path) -> None:
    """A forked child inherits no sampling thread and samples none of its parent's runs."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        import mlledger
        from mlledger.runs import sampler
        ledger = mlledger.Ledger({str(tmp_path / "store")!r})
        with ledger.run("parent", sample=0.05):
            pid = os.fork()
            if pid == 0:
                os._exit(0 if sampler.thread() is None else 3)
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        check=True, cwd=tmp_path,
    )
    assert out.stdout.strip().splitlines()[-1] == "0"


@pytest.mark.slow
def test_gpu_figures_where_nvml_answers(tmp_path: Path) -> None:
    """Where NVML answers, a sampled run also records sys.gpu_util_percent and
    sys.gpu_memory_bytes (the visible devices' figures when no device lists the process)."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "pynvml.py").write_text(FAKE_NVML)
    script = textwrap.dedent(
        f"""
        import json
        import mlledger
        ledger = mlledger.Ledger({str(tmp_path / "store")!r})
        with ledger.run("gpu", sample=0.05) as run:
            pass
        print(json.dumps(ledger.get(run.id).metrics))
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
        check=True, cwd=tmp_path,
    )
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["sys.gpu_util_percent"] == 70
    assert metrics["sys.gpu_memory_bytes"] == 2 * 3 * 2**30  # both devices' used memory


@pytest.mark.slow
def test_notebook_track_sample(tmp_path: Path, kernel_env: dict[str, str]) -> None:
    """%%track --sample 0.05 samples the cell's run in a real kernel; a bad --sample is a
    UsageError of the magic and the cell does not run."""
    pytest.importorskip("ipykernel")
    from helpers.notebooks import by_name, execute

    cells = [
        "%load_ext mlledger",
        "%%track spin --sample 0.05\nimport time\nend = time.perf_counter() + 0.3\n"
        "while time.perf_counter() < end:\n    pass",
        "%%track bad --sample -1\nnever = 1",
        'print("never" in dir())',
    ]
    done = execute(tmp_path, cells, kernel_env)
    run = by_name(done.ledger(), "spin")
    assert len(run.metric_history("sys.cpu_percent")) >= 3
    assert "sys.rss_bytes" in run.metrics
    assert done.raised.get(2) == "UsageError"
    assert done.text(3).strip() == "False"
