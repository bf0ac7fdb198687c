"""The IPython extension: real notebooks run end to end in a real kernel, then the ledger is read.

Each scenario builds a notebook with nbformat in a temporary folder and
executes it once, cell by cell, in a ``python3`` kernel (ipykernel, driven by
nbclient) whose environment points ``MLLEDGER_URL`` at a temporary store and
the XDG and IPython folders at temporary ones; the tests then query that
store from this process.

Kernel choice: the ``python3`` kernelspec.  jupyter_client runs a spec whose
command is ``python`` with this interpreter, so an installed default spec is
used as it is; when there is none, or it names another interpreter, the suite
writes one pointing at ``sys.executable`` in a temporary folder and puts that
folder first on ``JUPYTER_PATH`` (nothing is installed in the user's folders).
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("numpy")

from helpers.notebooks import KERNEL, Executed, by_name, execute, kernel_environment  # noqa: E402

import mlledger  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"


# ---------------------------------------------------------------------------
# %%track: one notebook, run once for all the tests below

BODY_SHOWN = (
    'print("rows:", len(rows))\nprint("careful", file=sys.stderr)\n'
    '{"n": len(rows), "first": rows[0]}'
)
BODY_QUIET = "answer = 42\nanswer;"
BODY_FAILING = "numbers = [1, 2]\nnumbers[5]"
BODY_BROKEN = "broken = ("
BODY_LOAD = (
    'rows = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]\nlabels = {"a": 1, "b": 0}\nscale = 2\n'
    'print("loaded", len(rows))'
)

TRACK_CELLS = [
    "import sys\nimport mlledger\nimport numpy as np\n%load_ext mlledger",  # 0
    f'%%track load -m "load the data" --tag stage=prep\n{BODY_LOAD}',  # 1
    (  # 2
        "%%track features\nX = np.array(rows) * scale\nrows.append([7.0, 8.0])\n"
        "n = len(rows)\nX.shape"
    ),
    (  # 3
        "%%track train\nrun = mlledger.current_run()\nfor step in range(3):\n"
        "    run.log(step=step, loss=1.0 / (step + 1))\nweights = X.mean(axis=0)\n\n"
        "def helper(v):\n    return v * scale\n\nclass Model:\n    pass"
    ),
    f"%%track shown\n{BODY_SHOWN}",  # 4
    BODY_SHOWN,  # 5
    f"%%track\n{BODY_QUIET}",  # 6
    BODY_QUIET,  # 7
    f"%%track failing\n{BODY_FAILING}",  # 8
    BODY_FAILING,  # 9
    f"%%track broken\n{BODY_BROKEN}",  # 10
    BODY_BROKEN,  # 11
    "%%track --bogus\nnever = 1",  # 12
    'print("never" in dir())',  # 13
    (  # 14
        '%%track files\nwith open("input.txt") as f:\n    text = f.read()\n'
        'with open("out.txt", "w") as f:\n    f.write(text.upper())'
    ),
    (  # 15
        '%%track secrets\napi_token = "s3cr3t-value"\n'
        'config = {"password": "hunter2", "lr": 0.1}'
    ),
    "%%track uses-secrets\nsettings = dict(config, token_used=bool(api_token))",  # 16
    "%ledger log -n 50",  # 17
    'rid = mlledger.default_ledger().runs(name="features")[0].id',  # 18
    "%ledger show $rid",  # 19
    "%ledger show",  # 20
    "%ledger show NOSUCHRUN",  # 21
    "%ledger use {other}",  # 22
    "%%track elsewhere\nmoved = [1]",  # 23
    "%ledger use --reset",  # 24
    "%ledger frobnicate",  # 25
]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory, kernel_env: dict[str, str]) -> Executed:
    """The %%track notebook, executed once."""
    workdir = tmp_path_factory.mktemp("track")
    (workdir / "input.txt").write_text("some words\n")
    other = str(workdir / "other-store")
    cells = [c.replace("{other}", other) for c in TRACK_CELLS]
    return execute(workdir, cells, kernel_env)


def test_track_records_the_cell_as_a_run(tracked: Executed) -> None:
    """A %%track cell is one finished cell run with its name, message, tags and source digest."""
    ledger = tracked.ledger()
    run = by_name(ledger, "load")
    assert run.status == "finished"
    assert run.record["kind"] == "cell"
    assert run.message == "load the data"
    assert run.tags == {"stage": "prep"}
    assert run.code["kind"] == "cell"
    assert run.code["source_digest"] == ledger.store.digest(BODY_LOAD.encode())
    assert run.code["execution_count"] == tracked.nb.cells[1].execution_count
    assert set(run.outputs) == {"rows", "labels", "scale"}
    assert run.inputs == {}
    assert ledger.load(run.outputs["labels"].digest) == {"a": 1, "b": 0}
    assert tracked.text(1) == "loaded 3\n"


def test_inputs_are_read_names_and_outputs_bound_names_by_value(tracked: Executed) -> None:
    """Names read are inputs (scalars as params); names bound or changed in place are outputs."""
    ledger = tracked.ledger()
    load, features = by_name(ledger, "load"), by_name(ledger, "features")
    assert set(features.inputs) == {"rows"}
    assert features.params["scale"] == 2
    assert features.params["rows"] == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    assert features.inputs["rows"].digest == load.outputs["rows"].digest
    assert set(features.outputs) == {"X", "n", "rows"}
    assert features.outputs["rows"].digest != features.inputs["rows"].digest
    assert len(ledger.load(features.outputs["rows"].digest)) == 4
    x = ledger.load(features.outputs["X"].digest)
    assert x.tolist() == [[2.0, 4.0], [6.0, 8.0], [10.0, 12.0]]


def test_modules_functions_classes_and_runs_are_not_values(tracked: Executed) -> None:
    """Modules, functions, classes and mlledger's run object are neither inputs nor outputs."""
    run = by_name(tracked.ledger(), "train")
    assert set(run.inputs) == {"X"}
    assert set(run.params) == {"X", "scale"}
    assert set(run.outputs) == {"weights", "step"}
    assert run.warnings == [w for w in run.warnings if "git" in w]


def test_metrics_logged_in_a_cell_land_on_its_run(tracked: Executed) -> None:
    """mlledger.current_run().log() in a tracked cell records metrics on the cell's run."""
    run = by_name(tracked.ledger(), "train")
    assert run.metrics["loss"] == pytest.approx(1 / 3)
    assert [s for s, _, _ in run.metric_history("loss")] == [0, 1, 2]


def test_lineage_links_cells_through_values(tracked: Executed) -> None:
    """The runs upstream of a cell are the cells that produced the values it read."""
    ledger = tracked.ledger()
    train = by_name(ledger, "train")
    upstream = {r.name for r in ledger.lineage(train).runs}
    assert upstream == {"train", "features", "load"}
    down = {r.name for r in ledger.lineage(by_name(ledger, "load"), direction="downstream").runs}
    assert {"features", "train"} <= down


def test_output_is_the_same_as_without_the_magic(tracked: Executed) -> None:
    """Printed text, stderr, the displayed value and a trailing ';' behave as in the plain cell."""
    assert tracked.outputs(4) == tracked.outputs(5)
    assert [o["output_type"] for o in tracked.outputs(4)] == ["stream", "stream", "execute_result"]
    result = next(o for o in tracked.nb.cells[4].outputs if o.output_type == "execute_result")
    assert result.execution_count == tracked.nb.cells[4].execution_count
    assert tracked.outputs(6) == tracked.outputs(7) == []
    assert by_name(tracked.ledger(), "shown").status == "finished"


def test_failing_cell_shows_the_same_error_and_the_run_fails(tracked: Executed) -> None:
    """A tracked cell that raises shows the plain cell's error, replies error; its run fails."""
    assert tracked.raised[8] == tracked.raised[9] == "IndexError"
    assert tracked.outputs(8) == tracked.outputs(9)
    run = by_name(tracked.ledger(), "failing")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "IndexError"
    assert "numbers[5]" in run.error.traceback
    assert "interactiveshell" not in run.error.traceback
    assert set(run.outputs) == {"numbers"}


def test_syntax_error_shows_the_same_error(tracked: Executed) -> None:
    """A tracked cell that does not compile shows the plain cell's SyntaxError; its run fails."""
    assert tracked.raised[10] == tracked.raised[11] == "SyntaxError"
    assert tracked.outputs(10) == tracked.outputs(11)
    assert by_name(tracked.ledger(), "broken").status == "failed"


def test_bad_magic_arguments_print_usage_and_run_nothing(tracked: Executed) -> None:
    """%%track with a wrong option prints its usage, fails the cell and does not run it."""
    assert tracked.raised[12] == "UsageError"
    assert "unrecognized arguments: --bogus" in tracked.text(12)
    assert "usage: %%track" in tracked.text(12)
    assert tracked.text(13) == "False\n"
    assert tracked.raised[25] == "UsageError"
    assert "usage: %ledger" in tracked.text(25)


def test_files_opened_in_a_cell_are_inputs_and_outputs(tracked: Executed) -> None:
    """Files a tracked cell reads and writes are recorded; file objects are not values."""
    run = by_name(tracked.ledger(), "files")
    assert run.inputs["input.txt"].kind == "file"
    assert run.outputs["out.txt"].kind == "file"
    assert set(run.outputs) == {"out.txt", "text"}
    assert (tracked.workdir / "out.txt").read_text() == "SOME WORDS\n"


def test_secret_looking_values_never_reach_the_store(tracked: Executed) -> None:
    """Secret-named outputs are not stored, secret keys are redacted: no secret is in the store."""
    ledger = tracked.ledger()
    secrets, uses = by_name(ledger, "secrets"), by_name(ledger, "uses-secrets")
    assert set(secrets.outputs) == {"config"}
    assert any("api_token" in w for w in secrets.warnings)
    assert ledger.load(secrets.outputs["config"].digest) == {"password": "<redacted>", "lr": 0.1}
    assert uses.params["api_token"] == "<redacted>"
    assert uses.inputs["config"].digest == secrets.outputs["config"].digest
    for path in Path(tracked.store).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"hunter2" not in data, path
            assert b"s3cr3t-value" not in data, path


def test_ledger_log_and_show_render_inline(tracked: Executed) -> None:
    """%ledger log lists the runs, %ledger show prints a record; an unknown run is a usage error."""
    ledger = tracked.ledger()
    log = tracked.text(17)
    for run in ledger.runs():
        assert run.id[:12] in log  # the short id, as mlledger log shows it
        assert run.name in log
    features = by_name(ledger, "features")
    show = tracked.text(19)
    assert show.startswith(f"run {features.id}\nname       features\nstatus     finished")
    assert "inputs" in show
    assert features.outputs["X"].digest in show
    assert tracked.text(20).startswith(f"run {ledger.runs()[0].id}")
    assert tracked.raised[21] == "UsageError"


def test_ledger_use_sends_runs_to_another_store(tracked: Executed) -> None:
    """%ledger use URL sends the next runs to that store; --reset goes back to the default."""
    other = mlledger.Ledger(str(tracked.workdir / "other-store"))
    assert [r.name for r in other.runs()] == ["elsewhere"]
    assert "elsewhere" not in [r.name for r in tracked.ledger().runs()]
    assert tracked.text(24).strip() == f"runs go to {tracked.store}"


# ---------------------------------------------------------------------------
# %track_all, cells run out of order, tracking disabled

ALL_CELLS = [
    "%load_ext mlledger\nimport os\nimport numpy as np",  # 0
    "%track_all on --tag mode=all",  # 1
    "base = np.linspace(0.0, 1.0, 5)",  # 2
    "doubled = base * 2\nfloat(doubled.sum())",  # 3
    "%ledger log -n 5",  # 4
    "1 / 0",  # 5
    "value = 7\n",  # 6
    "%track_all off",  # 7
    "after = doubled + 1",  # 8
    "1 / 0",  # 9
    "%%track same\nvalue = 7",  # 10
    "%%track consumer\nsummary = {'total': float(frame.sum())}",  # 11
    "%%track producer\nframe = np.arange(6.0).reshape(2, 3)",  # 12
    'os.environ["MLLEDGER_DISABLE"] = "1"',  # 13
    "%%track disabled\nquiet = [1]\nprint('ran', quiet)",  # 14
    'del os.environ["MLLEDGER_DISABLE"]',  # 15
]


@pytest.fixture(scope="module")
def tracked_all(tmp_path_factory: pytest.TempPathFactory, kernel_env: dict[str, str]) -> Executed:
    """The %track_all notebook, executed once; the producer (cell 12) runs before cell 11."""
    order = [*range(11), 12, 11, 13, 14, 15]
    return execute(tmp_path_factory.mktemp("track-all"), ALL_CELLS, kernel_env, order=order)


def test_track_all_tracks_every_cell_until_off(tracked_all: Executed) -> None:
    """%track_all on makes each code cell a run cell[N]; magic cells and cells after off are not."""
    ledger = tracked_all.ledger()
    auto = [r for r in ledger.runs() if r.tags.get("mode") == "all"]
    counts = {tracked_all.nb.cells[i].execution_count: i for i in (2, 3, 5, 6)}
    assert sorted(r.name for r in auto) == sorted(f"cell[{n}]" for n in counts)
    runs = {counts[r.code["execution_count"]]: r for r in auto}
    assert set(runs[2].outputs) == {"base"}
    assert set(runs[3].inputs) == {"base"}
    assert set(runs[3].outputs) == {"doubled"}
    assert runs[3].inputs["base"].digest == runs[2].outputs["base"].digest
    assert runs[5].status == "failed"
    assert runs[5].error is not None
    assert runs[5].error.type == "ZeroDivisionError"
    assert len(ledger.runs()) == len(auto) + 3  # + same, consumer, producer


def test_track_all_leaves_output_and_errors_alone(tracked_all: Executed) -> None:
    """Cells tracked by %track_all display and raise exactly as untracked cells do."""
    assert tracked_all.raised[5] == tracked_all.raised[9] == "ZeroDivisionError"
    assert tracked_all.outputs(5) == tracked_all.outputs(9)
    assert tracked_all.text(3) == "5.0"
    assert "cell[" in tracked_all.text(4)


def test_same_cell_same_code_digest_with_magic_or_track_all(tracked_all: Executed) -> None:
    """A cell's code digest is its source, whether tracked by %%track or by %track_all."""
    ledger = tracked_all.ledger()
    same = by_name(ledger, "same")
    count = tracked_all.nb.cells[6].execution_count
    auto = by_name(ledger, f"cell[{count}]")
    assert same.code["source_digest"] == auto.code["source_digest"]
    assert same.code["execution_count"] != auto.code["execution_count"]


def test_lineage_follows_values_whatever_the_cell_order(tracked_all: Executed) -> None:
    """A cell below another but run first still links to the cell that read its value."""
    ledger = tracked_all.ledger()
    consumer, producer = by_name(ledger, "consumer"), by_name(ledger, "producer")
    assert consumer.inputs["frame"].digest == producer.outputs["frame"].digest
    assert producer.id in {r.id for r in ledger.lineage(consumer).runs}
    assert tracked_all.nb.cells[12].execution_count < tracked_all.nb.cells[11].execution_count


def test_disabled_tracking_runs_the_cell_plainly(tracked_all: Executed) -> None:
    """With MLLEDGER_DISABLE=1 a %%track cell runs as usual and records nothing."""
    assert tracked_all.text(14) == "ran [1]\n"
    assert "disabled" not in [r.name for r in tracked_all.ledger().runs()]


# ---------------------------------------------------------------------------
# the example notebook


@pytest.fixture
def example(tmp_path: Path, kernel_env: dict[str, str]) -> Executed:
    """examples/notebook.ipynb executed end to end against a temporary store."""
    nb = nbformat.read(EXAMPLE, as_version=4)
    store = str(tmp_path / "store")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in kernel_environment(tmp_path, store, kernel_env).items():
            mp.setenv(k, v)
        nbclient.NotebookClient(
            nb, kernel_name=KERNEL, timeout=120, resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    return Executed(nb, store, tmp_path)


def test_example_notebook_runs_and_records_its_cells(example: Executed) -> None:
    """The example notebook runs without error and leaves three linked cell runs with metrics."""
    ledger = example.ledger()
    assert sorted(r.name for r in ledger.runs()) == ["evaluate", "fit", "make-data"]
    make, evaluate = by_name(ledger, "make-data"), by_name(ledger, "evaluate")
    assert set(make.inputs) == {"rng"}
    assert set(make.outputs) == {"X", "true_w", "y", "rng"}
    assert evaluate.inputs["rng"].digest == make.outputs["rng"].digest
    assert evaluate.metrics["test_mse"] < 0.05
    assert by_name(ledger, "fit").metrics["mse"] < 0.05
    assert {r.name for r in ledger.lineage(evaluate).runs} == {"evaluate", "fit", "make-data"}
    cells = example.nb.cells
    texts = [example.text(i) for i in range(len(cells)) if cells[i].cell_type == "code"]
    assert any("evaluate" in t and "make-data" in t and "runs in" in t for t in texts)
    assert "['evaluate', 'fit', 'make-data']" in texts[-1]


def test_example_notebook_is_stored_without_outputs() -> None:
    """The example notebook is valid nbformat, kept without outputs so it diffs cleanly."""
    nb = nbformat.read(EXAMPLE, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert code[0].source.startswith("%load_ext mlledger")

