"""What the ledger records of a tracked call's arguments and return value (ledger.py)."""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import pytest
from helpers.runs import entry_run_id, open_ledger, reopen
from helpers.servers import StoreSpec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlledger
from mlledger import AccessError, Ledger, PolicyError, Run
from mlledger.capture.redact import REDACTED
from mlledger.capture.values import describe


def call(ledger: Ledger, fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, Run]:
    """Call ``ledger.tracked(fn)`` and return its result and its run, read back from the store."""
    box: dict[str, str] = {}

    def probe(*a: Any, **k: Any) -> Any:
        run = mlledger.current_run()
        assert run is not None
        box["id"] = run.id
        return fn(*a, **k)

    probe.__signature__ = __import__("inspect").signature(fn)  # type: ignore[attr-defined]
    probe.__qualname__ = fn.__qualname__
    result = ledger.tracked(probe)(*args, **kwargs)
    return result, reopen(ledger).get(box["id"])


@attrs.frozen
class Config:
    lr: float
    layers: tuple[int, ...] = (1, 2)


@dataclasses.dataclass
class DataConfig:
    path: str
    batch: int = 32


class Opaque:
    """A picklable user object that is neither JSON nor attrs."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.x == self.x

    def __hash__(self) -> int:
        return self.x


# ---------------------------------------------------------------------------
# binding


def test_positional_and_keyword_calls_record_the_same(ledger: Ledger) -> None:
    """``f(x)`` and ``f(a=x)`` record the same params and input digests (defaults applied)."""

    def f(a: list[int], b: int = 3) -> None:
        return None

    _, r1 = call(ledger, f, [1, 2])
    _, r2 = call(ledger, f, a=[1, 2])
    _, r3 = call(ledger, f, [1, 2], 3)
    assert r1.params == r2.params == r3.params == {"a": [1, 2], "b": 3}
    assert r1.inputs["a"].digest == r2.inputs["a"].digest == r3.inputs["a"].digest


def test_var_args_and_kwargs_are_recorded(ledger: Ledger) -> None:
    """``*args`` is one param; ``**kwargs`` entries become params of their own."""

    def f(a: int, *rest: int, **extra: Any) -> None:
        return None

    _, run = call(ledger, f, 1, 2, 3, lr=0.1, name="x")
    assert run.params == {"a": 1, "rest": [2, 3], "lr": 0.1, "name": "x"}


def test_ignore_skips_named_arguments_and_kwargs(ledger: Ledger) -> None:
    """``ignore=`` leaves the named arguments (and **kwargs entries) out of params and inputs."""

    @ledger.tracked(ignore=["big", "debug"])
    def f(x: int, big: list[int], **kw: Any) -> None:
        return None

    f(1, [1] * 10, debug=True, keep=2)
    run_id = max(entry_run_id(k) for k in ledger.store.backend.list("runs"))
    got = ledger.get(run_id)
    assert got.params == {"x": 1, "keep": 2}
    assert got.inputs == {}


# ---------------------------------------------------------------------------
# values


def test_json_native_values_are_inline(ledger: Ledger) -> None:
    """JSON-native arguments are params inline; non-scalars are also inputs by value digest."""

    def f(n: int, lr: float, flag: bool, name: str, none: Any, cfg: dict[str, Any],
          seq: tuple[int, ...]) -> None:
        return None

    _, run = call(ledger, f, 3, 0.5, True, "adam", None, {"a": [1, {"b": 2}]}, (1, 2))
    assert run.params == {
        "n": 3, "lr": 0.5, "flag": True, "name": "adam", "none": None,
        "cfg": {"a": [1, {"b": 2}]}, "seq": [1, 2],
    }
    assert set(run.inputs) == {"cfg", "seq"}
    assert ledger.load(run.inputs["cfg"].digest) == {"a": [1, {"b": 2}]}
    assert run.inputs["cfg"].format == "json"


def test_nan_and_inf_params_stay_valid_json(ledger: Ledger) -> None:
    """A NaN or infinite float param is recorded as a string, so every JSON reader can read it."""

    def f(a: float, b: float) -> None:
        return None

    _, run = call(ledger, f, float("nan"), float("inf"))
    assert run.params == {"a": "nan", "b": "inf"}


def test_attrs_and_dataclass_values_go_through_the_converter(ledger: Ledger) -> None:
    """attrs and dataclass arguments are recorded as their structured (JSON) form."""

    def f(cfg: Config, data: DataConfig) -> None:
        return None

    _, run = call(ledger, f, Config(0.1), DataConfig("train.csv"))
    assert run.params["cfg"] == {"lr": 0.1, "layers": [1, 2]}
    assert run.params["data"] == {"path": "train.csv", "batch": 32}
    assert run.inputs["cfg"].format == "json"
    assert ledger.load(run.inputs["data"].digest) == {"path": "train.csv", "batch": 32}


def test_paths_to_files_and_folders_become_input_artifacts(ledger: Ledger, workdir: Path) -> None:
    """A str or Path naming an existing file or folder is stored as an input (file or tree)."""
    (workdir / "train.csv").write_text("a,b\n")
    (workdir / "images").mkdir()
    (workdir / "images" / "1.png").write_bytes(b"\x89PNG")

    def f(data: str, images: Path, missing: str, word: str) -> None:
        return None

    _, run = call(ledger, f, "train.csv", Path("images"), "nope.csv", "adam")
    assert run.params == {"data": "train.csv", "images": "images", "missing": "nope.csv",
                          "word": "adam"}
    assert run.inputs["data"].kind == "file"
    assert ledger.store.get(run.inputs["data"].digest) == b"a,b\n"
    assert run.inputs["images"].kind == "tree"
    assert run.inputs["images"].files == 1
    assert "missing" not in run.inputs
    assert "word" not in run.inputs


def test_absolute_path_argument_is_stored(ledger: Ledger, tmp_path: Path) -> None:
    """A path argument outside the working directory is stored too."""
    f_path = tmp_path / "outside.bin"
    f_path.write_bytes(b"outside")

    def f(p: Path) -> None:
        return None

    _, run = call(ledger, f, f_path)
    assert ledger.store.get(run.inputs["p"].digest) == b"outside"


def test_numpy_scalars_are_plain_numbers_in_params(ledger: Ledger) -> None:
    """np.float64(0.01), np.int64(5) and np.bool_ are recorded as the numbers they hold, so a
    query finds them; a datetime64 stays a value artifact, a 0-d array an array."""
    np = pytest.importorskip("numpy")

    def f(lr: Any, batch: Any, flag: Any, half: Any, when: Any, arr: Any, tenth: Any) -> None:
        return None

    _, run = call(ledger, f, np.float64(0.01), np.int64(5), np.bool_(True), np.float32(0.5),
                  np.datetime64("2020-01-01"), np.array(3.0), np.float32(0.1))
    assert run.params["lr"] == 0.01
    assert type(run.params["lr"]) is float
    assert run.params["batch"] == 5
    assert type(run.params["batch"]) is int
    assert run.params["flag"] is True
    assert run.params["half"] == 0.5
    assert run.params["tenth"] == 0.1  # np.float32(0.1), as written, not 0.10000000149
    assert not {"lr", "batch", "flag", "half"} & set(run.inputs)
    assert run.inputs["when"].kind == "value"
    assert run.inputs["arr"].format == "npy"
    found = reopen(ledger).runs(where="params.lr > 0.001 and params.batch = 5")
    assert found.ids == [run.id]


def test_folders_named_by_accident_are_not_snapshotted(
    ledger: Ledger, tmp_path: Path, workdir: Path
) -> None:
    """sep="/", the home folder, or a folder holding the store itself (out_dir="." with the
    store under the working directory) are not stored as inputs: a warning says why. A
    real data folder still is."""
    (workdir / "data").mkdir()
    (workdir / "data" / "a.csv").write_text("x\n1\n")

    def f(sep: str, home: str, here: str, up: str, data: str) -> None:
        return None

    _, run = call(ledger, f, "/", os.path.expanduser("~"), ".", str(tmp_path), "data")
    assert sorted(run.inputs) == ["data", "here"]  # "." holds no store here: it is data
    assert run.inputs["data"].kind == "tree"
    text = "\n".join(run.warnings)
    assert "'/' not stored: it is a filesystem root" in text
    assert "it is the home folder" in text
    assert f"{str(tmp_path)!r} not stored: it holds this ledger's own files" in text
    assert run.params["sep"] == "/"  # the param itself is still recorded
    inside = Ledger(str(workdir / "store"))
    _, run2 = call(inside, f, "/", "data", ".", "data", "data")
    assert "here" not in run2.inputs
    assert any("'.' not stored: it holds this ledger's own files" in w for w in run2.warnings)


def test_numpy_array_is_an_npy_value_artifact(ledger: Ledger) -> None:
    """A numpy array argument is a value artifact in .npy format that loads back equal."""
    np = pytest.importorskip("numpy")
    arr = np.arange(12, dtype="float32").reshape(3, 4)

    def f(x: Any) -> None:
        return None

    _, run = call(ledger, f, arr)
    art = run.inputs["x"]
    assert art.kind == "value"
    assert art.format == "npy"
    assert run.params["x"]["shape"] == [3, 4]
    assert run.params["x"]["dtype"] == "float32"
    assert run.params["x"]["digest"] == art.digest
    back = ledger.load(art.digest)
    assert back.dtype == arr.dtype
    assert (back == arr).all()


def test_picklable_object_is_a_pickle_artifact(ledger: Ledger) -> None:
    """A picklable user object is stored as a pickle, loaded back only with allow_pickle."""

    def f(model: Opaque) -> Opaque:
        return model

    _, run = call(ledger, f, Opaque(3))
    art = run.inputs["model"]
    assert art.format == "pickle"
    assert run.params["model"]["digest"] == art.digest
    assert run.params["model"]["type"].endswith("Opaque")
    with pytest.raises(PolicyError, match="allow_pickle"):
        ledger.load(art.digest)
    assert ledger.load(art.digest, allow_pickle=True) == Opaque(3)
    assert run.outputs["return"].digest == art.digest


@pytest.mark.parametrize(
    "make", [threading.Lock, lambda: (i for i in range(3))], ids=["lock", "generator"]
)
def test_unpicklable_value_is_type_and_repr_with_a_warning(ledger: Ledger, make: Any) -> None:
    """An argument that cannot be stored is recorded as its type and repr, with a warning."""
    value = make()

    def f(x: Any) -> str:
        return "ok"

    result, run = call(ledger, f, value)
    assert result == "ok"
    assert run.status == "finished"
    assert run.params["x"]["type"] == describe(value)["type"]  # e.g. "_thread.lock", "generator"
    assert run.params["x"]["repr"] == repr(value)[:200]
    assert "x" not in run.inputs
    assert any("param x" in w and "cannot be stored" in w for w in run.warnings)


def test_repr_that_raises_is_a_warning_not_a_failure(ledger: Ledger) -> None:
    """An unstorable argument whose ``__repr__`` raises lets the call run; a warning says so."""

    class Hostile:  # local: cannot be pickled
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    def f(x: Any) -> int:
        return 1

    result, run = call(ledger, f, Hostile())
    assert result == 1
    assert run.status == "finished"
    assert run.params["x"]["repr"] == f"<{Hostile.__qualname__}>"
    assert any("repr()" in w for w in run.warnings)


def test_value_over_inline_limit_is_stored_not_inline(tmp_path: Path, workdir: Path) -> None:
    """A param whose JSON is larger than ``inline_limit`` is an artifact, not inline."""
    ledger = Ledger(str(tmp_path / "store"), inline_limit=100)

    def f(rows: list[int], text: str, small: list[int]) -> None:
        return None

    rows = list(range(200))
    text = "x" * 500
    _, run = call(ledger, f, rows, text, [1])
    assert run.params["rows"] == {"type": "list", "len": 200, "digest": run.inputs["rows"].digest}
    assert ledger.load(run.inputs["rows"].digest) == rows
    assert run.params["text"]["digest"] == run.inputs["text"].digest
    assert run.params["text"]["len"] == 500
    assert ledger.load(run.inputs["text"].digest) == text
    assert run.params["small"] == [1]


def test_scalars_never_link_runs(ledger: Ledger) -> None:
    """Scalars (numbers, bools, short strings, None) are params only, never inputs."""

    def f(a: int, b: float, c: str, d: None) -> None:
        return None

    _, run = call(ledger, f, 1, 0.1, "x", None)
    assert run.inputs == {}


# ---------------------------------------------------------------------------
# return values


def test_return_value_rules(ledger: Ledger, workdir: Path) -> None:
    """The return value is output ``return`` by the same rules; None is no output."""
    (workdir / "model.bin").write_bytes(b"weights")

    def as_path() -> Path:
        return Path("model.bin")

    def as_value() -> dict[str, int]:
        return {"acc": 1}

    def nothing() -> None:
        return None

    def as_scalar() -> float:
        return 0.5

    _, run = call(ledger, as_path)
    assert run.outputs["return"].kind == "file"
    assert ledger.store.get(run.outputs["return"].digest) == b"weights"
    _, run = call(ledger, as_value)
    assert ledger.load(run.outputs["return"].digest) == {"acc": 1}
    _, run = call(ledger, nothing)
    assert run.outputs == {}
    _, run = call(ledger, as_scalar)
    assert ledger.load(run.outputs["return"].digest) == 0.5


def test_unstorable_return_value_is_a_warning(ledger: Ledger) -> None:
    """A return value that cannot be stored is returned unchanged; the run records a warning."""
    lock = threading.Lock()

    def f() -> Any:
        return lock

    result, run = call(ledger, f)
    assert result is lock
    assert "return" not in run.outputs
    assert any("return value" in w for w in run.warnings)


def test_return_numpy_is_npy(ledger: Ledger) -> None:
    """A returned numpy array is an .npy value artifact."""
    np = pytest.importorskip("numpy")

    def f() -> Any:
        return np.ones(3)

    _, run = call(ledger, f)
    assert run.outputs["return"].format == "npy"


# ---------------------------------------------------------------------------
# secrets


def test_secret_params_and_tags_are_redacted(ledger: Ledger) -> None:
    """Params and tags whose names look secret are redacted, nested dicts included."""

    def f(api_key: str, lr: float, cfg: dict[str, Any], **kw: Any) -> None:
        return None

    _, run = call(ledger, f, "sk-123", 0.1, {"db": {"Password": "hunter2", "host": "h"},
                                             "depth": 2}, GH_TOKEN="ghp", auth_header="x")
    assert run.params["api_key"] == REDACTED
    assert run.params["GH_TOKEN"] == REDACTED
    assert run.params["auth_header"] == REDACTED
    assert run.params["lr"] == 0.1
    assert run.params["cfg"] == {"db": {"Password": REDACTED, "host": "h"}, "depth": 2}
    stored = ledger.load(run.inputs["cfg"].digest)
    assert "hunter2" not in repr(stored)

    with ledger.run("r", params={"private_key": "pk", "n": 1},
                    tags={"team": "cv", "Secret": "s"}) as block:
        block.log_params(db_passwd="pw", nested={"credential": "c"})
    got = reopen(ledger).get(block.id)
    assert got.params == {"private_key": REDACTED, "n": 1, "db_passwd": REDACTED,
                          "nested": {"credential": REDACTED}}
    assert got.tags == {"team": "cv", "Secret": REDACTED}
    raw = b"".join(ledger.store.read_entry(k) for k in ledger.store.backend.list("runs"))
    for secret in (b"sk-123", b"ghp", b"hunter2", b"pk", b"pw", b"\"c\"", b"\"s\""):
        assert secret not in raw


def test_secrets_in_mappings_inside_lists_are_redacted(ledger: Ledger) -> None:
    """A list of server configs, a tuple or a list given as the whole param hides its
    secrets too, in the recorded param and in the stored value; records in lists keep
    their data (a bare "token" or "key" field hides only a credential-like value)."""

    def f(cfg: dict[str, Any], creds: list[Any], servers: tuple[Any, ...],
          logprobs: list[Any]) -> list[Any]:
        return creds

    result, run = call(
        ledger, f,
        {"servers": [{"host": "a", "token": "ghp_tk1secret"}, ("x", {"password": "pw-2"})]},
        [{"api_key": "k-3", "user": "u"}],
        ({"auth_token": "at-4"},),
        [{"token": "Hello", "logprob": -0.1}, {"key": "lr", "value": 0.1}],
    )
    assert result == [{"api_key": "k-3", "user": "u"}]  # the caller's own value is untouched
    assert run.params["cfg"] == {
        "servers": [{"host": "a", "token": REDACTED}, ["x", {"password": REDACTED}]]
    }
    assert run.params["creds"] == [{"api_key": REDACTED, "user": "u"}]
    assert run.params["servers"] == [{"auth_token": REDACTED}]
    assert run.params["logprobs"] == [{"token": "Hello", "logprob": -0.1},
                                      {"key": "lr", "value": 0.1}]
    for art in (run.inputs["cfg"], run.inputs["creds"], run.inputs["servers"],
                run.outputs["return"]):
        stored = repr(ledger.load(art.digest))
        for secret in ("ghp_tk1secret", "pw-2", "k-3", "at-4"):
            assert secret not in stored


# ---------------------------------------------------------------------------
# faults


def test_unreadable_path_argument_is_a_warning(
    ledger: Ledger, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path argument that cannot be read is a warning; the call runs."""
    (workdir / "secret.csv").write_text("x")
    real_put = ledger.store.put

    def put(path: Any, **kw: Any) -> Any:
        if str(path).endswith("secret.csv"):
            raise AccessError(f"permission denied: {path}")
        return real_put(path, **kw)

    monkeypatch.setattr(ledger.store, "put", put)

    def f(data: str) -> int:
        return 5

    result, run = call(ledger, f, "secret.csv")
    assert result == 5
    assert "data" not in run.inputs
    assert any("secret.csv" in w and "not stored" in w for w in run.warnings)


def test_failing_capture_of_one_param_does_not_fail_the_call(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If encoding one argument blows up, that param gets a warning and the call still runs."""
    import mlledger.runs.writer as ledger_mod

    real = ledger_mod.encode_redacted

    def encode(value: Any) -> Any:
        if value == [13]:
            raise RuntimeError("encoder exploded")
        return real(value)

    monkeypatch.setattr(ledger_mod, "encode_redacted", encode)

    def f(bad: list[int], good: list[int]) -> int:
        return 1

    result, run = call(ledger, f, [13], [1])
    assert result == 1
    assert run.params["good"] == [1]
    assert run.params["bad"]["error"] == "not recorded"
    assert any("encoder exploded" in w for w in run.warnings)


def test_tracking_warning_does_not_escape_as_error(ledger: Ledger) -> None:
    """Capture trouble shows as run warnings, never as a Python error in the user's code."""

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("x")

        def __reduce__(self) -> Any:
            raise RuntimeError("y")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any escaping warning fails the test

        def f(a: Any, b: Any) -> str:
            return "done"

        result, _run = call(ledger, f, Hostile(), [Hostile()])
    assert result == "done"


# ---------------------------------------------------------------------------
# properties


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=12,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=6))
def test_dict_param_capture_ignores_key_order(ledger: Ledger, d: dict[str, Any]) -> None:
    """A dict argument records the same param and input digest whatever its key order."""

    def f(cfg: dict[str, Any]) -> None:
        return None

    shuffled = dict(reversed(list(d.items())))
    _, r1 = call(ledger, f, d)
    _, r2 = call(ledger, f, shuffled)
    assert r1.params == r2.params
    assert r1.inputs["cfg"].digest == r2.inputs["cfg"].digest


class Endpoint(NamedTuple):
    url: str
    api_key: str


@dataclasses.dataclass
class Job:
    name: str
    endpoint: Endpoint


def test_secrets_in_namedtuples_and_nested_configs_never_reach_the_store(
    tmp_path: Path,
) -> None:
    """A namedtuple param, and a list of dataclasses holding namedtuples, are recorded as
    plain data with their secret fields redacted; no byte of the secrets is in the store."""
    ledger = Ledger(str(tmp_path / "store"))
    # made here, so the test's own source (in the run's git diff) does not hold them
    secrets = tuple(f"sk-live-{uuid.uuid4().hex}" for _ in range(2))

    def f(endpoint: Endpoint, jobs: list[Job]) -> Endpoint:
        return endpoint

    ep = Endpoint("https://api.example", secrets[0])
    result, run = call(ledger, f, ep, [Job("a", Endpoint("https://b.example", secrets[1]))])
    assert result is ep
    assert run.params["endpoint"] == {"url": "https://api.example", "api_key": REDACTED}
    assert run.params["jobs"] == [
        {"name": "a", "endpoint": {"url": "https://b.example", "api_key": REDACTED}}
    ]
    assert run.outputs["return"].digest == run.inputs["endpoint"].digest
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, path


def test_url_credentials_in_params_and_tags_never_reach_the_store(tmp_path: Path) -> None:
    """A database URL with a password as a param, inside a config, in a list or as a tag is
    recorded without the password (and without secret query values); the rest is kept."""
    ledger = Ledger(str(tmp_path / "store"))
    pw = f"pw{uuid.uuid4().hex}"
    url = f"postgresql://app:{pw}@db:5432/ml?sslmode=require&password={pw}x"
    clean = f"postgresql://db:5432/ml?sslmode=require&password={REDACTED}"

    def f(db_url: str, cfg: dict[str, Any], mirrors: list[str]) -> None:
        return None

    _, run = call(ledger, f, url, {"db": {"url": url}}, ["https://example.org/x", url])
    assert run.params["db_url"] == clean
    assert run.params["cfg"] == {"db": {"url": clean}}
    assert run.params["mirrors"] == ["https://example.org/x", clean]
    with ledger.run("tagged", tags={"source": url}) as tagged:
        pass
    assert reopen(ledger).get(tagged.id).tags == {"source": clean}
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert pw.encode() not in path.read_bytes(), path


def test_a_hydra_config_is_plain_data_redacted_and_queryable(tmp_path: Path) -> None:
    """An OmegaConf DictConfig (what Hydra passes to a training function) is recorded as
    plain JSON: interpolations resolved, secret-named keys redacted, fields queryable."""
    omegaconf = pytest.importorskip("omegaconf")
    ledger = Ledger(str(tmp_path / "store"))
    secret = f"wandb-{uuid.uuid4().hex}"
    cfg = omegaconf.OmegaConf.create({
        "model": {"lr": 0.1, "layers": [64, 64]},
        "sched": {"lr": "${model.lr}"},
        "wandb": {"api_key": secret, "project": "p"},
    })

    def train(cfg: Any) -> None:
        return None

    _, run = call(ledger, train, cfg)
    assert run.params["cfg"] == {
        "model": {"lr": 0.1, "layers": [64, 64]},
        "sched": {"lr": 0.1},
        "wandb": {"api_key": REDACTED, "project": "p"},
    }
    assert ledger.runs(where="params.cfg.sched.lr = 0.1").ids == [run.id]
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_redacted_dict_argument_still_links_to_its_producer(ledger: Ledger) -> None:
    """A dict with a secret key returned by one call and passed to the next is still one digest."""

    @ledger.tracked
    def make() -> dict[str, str]:
        return {"token": "t0k3n", "host": "h"}

    @ledger.tracked
    def use(conn: dict[str, str]) -> None:
        return None

    use(make())
    ids = sorted({entry_run_id(k) for k in ledger.store.backend.list("runs")})
    a, b = (ledger.get(i) for i in ids)
    assert a.outputs["return"].digest == b.inputs["conn"].digest


def test_a_redacted_value_loaded_and_passed_on_keeps_its_digest(ledger: Ledger) -> None:
    """The stored (redacted) form of a value, loaded and passed to the next call, is
    redacted again to the very same bytes: the two runs still link by one digest."""

    @ledger.tracked
    def make() -> dict[str, str]:
        return {"db": "postgres://u:pw@h/db?password=x&sslmode=a", "api_key": "k"}

    @ledger.tracked
    def use(conn: dict[str, str]) -> None:
        return None

    make()
    made = ledger.runs(limit=1)[0]
    stored = ledger.load(made.outputs["return"].digest)
    assert stored == {"db": f"postgres://h/db?password={REDACTED}&sslmode=a", "api_key": REDACTED}
    use(stored)
    used = ledger.runs(limit=1)[0]
    assert used.inputs["conn"].digest == made.outputs["return"].digest


def test_any_store_records_arguments(store_spec: StoreSpec, workdir: Path) -> None:
    """Arguments, path inputs and return values are stored and read back on every store kind."""
    (workdir / "in.txt").write_text("input")
    ledger = open_ledger(store_spec)

    def f(path: str, cfg: dict[str, int]) -> list[int]:
        return [1, 2]

    _, run = call(ledger, f, "in.txt", {"a": 1})
    assert ledger.store.get(run.inputs["path"].digest) == b"input"
    assert ledger.load(run.inputs["cfg"].digest) == {"a": 1}
    assert ledger.load(run.outputs["return"].digest) == [1, 2]
