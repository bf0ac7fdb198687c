"""Code identity: functions, closures, bytecode fallback, the user's modules, and git state."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.runs import entry_run_id, import_fresh, reopen, run_python, write_git_repo

from mlledger import Ledger
from mlledger.capture import code as code_mod
from mlledger.capture.code import function_code, git_state, source_code, user_modules
from mlledger.hashing import digest_bytes

ALGO = "xxh128"


pytestmark = pytest.mark.usefixtures("fresh_git_cache")


def plain(x: int) -> int:
    return x + 1


class Model:
    def fit(self, n: int) -> int:
        return n


# ---------------------------------------------------------------------------
# functions


def test_plain_function_identity() -> None:
    """A function's record has its qualified name, module, file, source and module digests."""
    rec, warns = function_code(plain, ALGO)
    assert warns == []
    assert rec["kind"] == "function"
    assert rec["qualname"] == "plain"
    assert rec["module"] == __name__
    assert rec["source_digest"] == digest_bytes(inspect.getsource(plain).encode(), ALGO)
    assert rec["module_digest"] == digest_bytes(Path(__file__).read_bytes(), ALGO)
    assert Path(rec["file"]).name == Path(__file__).name
    assert "closure_digest" not in rec


def test_method_identity() -> None:
    """A method is named Class.method and digested by its own source."""
    rec, _ = function_code(Model.fit, ALGO)
    assert rec["qualname"] == "Model.fit"
    assert rec["source_digest"] == digest_bytes(inspect.getsource(Model.fit).encode(), ALGO)
    bound, _ = function_code(Model().fit, ALGO)
    assert bound["source_digest"] == rec["source_digest"]


def test_wrapped_function_is_identified_by_the_original() -> None:
    """A decorated function (functools.wraps) is identified by the function it wraps."""
    import functools

    def deco(f: Any) -> Any:
        @functools.wraps(f)
        def w(*a: Any) -> Any:
            return f(*a)

        return w

    rec, _ = function_code(deco(plain), ALGO)
    assert rec["qualname"] == "plain"
    assert rec["source_digest"] == function_code(plain, ALGO)[0]["source_digest"]


def test_lambda_identity() -> None:
    """A lambda has a source digest too; two different lambdas differ."""
    f = lambda x: x + 1  # noqa: E731
    g = lambda x: x * 2  # noqa: E731
    rf, wf = function_code(f, ALGO)
    rg, _ = function_code(g, ALGO)
    assert wf == []
    assert rf["qualname"].endswith("<lambda>")
    assert rf["source_digest"] != rg["source_digest"]


def test_lambdas_on_one_line_differ() -> None:
    """Two lambdas written on one line share their source line, not their identity; the same
    lambda asked twice is the same."""
    pair = [lambda: 0, lambda: 1]
    f1 = lambda x: x + 1; f2 = lambda x: x * 2  # noqa: E702, E731
    digests = [function_code(f, ALGO)[0]["source_digest"] for f in (*pair, f1, f2)]
    assert len(set(digests)) == 4
    assert function_code(pair[0], ALGO)[0]["source_digest"] == digests[0]


def make_helper_user(k: Any) -> Any:
    def helper(x: float) -> float:
        return x * k

    def outer(y: float) -> float:
        return helper(y) + 1

    return outer


def compose(f: Any, g: Any) -> Any:
    def both(x: float) -> float:
        return f(g(x))

    return both


def test_closures_of_one_factory_nested_count_their_own_values() -> None:
    """compose(inc, compose(scale(2), inc)) and the same with scale(5) share every code
    object, not their values: their identities differ."""
    inc = make_scaler(1.0)
    a = compose(inc, compose(make_scaler(2.0), inc))
    b = compose(inc, compose(make_scaler(5.0), inc))
    assert a(1.0) != b(1.0)
    assert function_code(a, ALGO)[0]["closure_digest"] != function_code(b, ALGO)[0][
        "closure_digest"
    ]


def make_recursive() -> Any:
    def fact(n: int) -> int:
        return 1 if n <= 1 else n * fact(n - 1)

    return fact


def test_closure_over_a_helper_function_counts_its_values() -> None:
    """A function closed over counts by its own code and closure: a helper closing over k=2
    and one closing over k=3 give different identities; a function closing over itself
    (recursion) has a stable identity and does not recurse forever."""
    two, _ = function_code(make_helper_user(2), ALGO)
    three, _ = function_code(make_helper_user(3), ALGO)
    again, _ = function_code(make_helper_user(2), ALGO)
    assert two["closure_digest"] != three["closure_digest"]
    assert two["closure_digest"] == again["closure_digest"]
    fact = make_recursive()
    assert fact(5) == 120
    rec, warns = function_code(fact, ALGO)
    assert warns == []
    assert rec["closure_digest"] == function_code(make_recursive(), ALGO)[0]["closure_digest"]


def test_closure_over_a_set_is_the_same_in_every_process() -> None:
    """A closed-over set (its order follows the hash seed) gives one closure digest under
    any PYTHONHASHSEED."""
    code = (
        "from mlledger.capture.code import function_code\n"
        "def make(classes):\n"
        "    def keep(x):\n"
        "        return x in classes\n"
        "    return keep\n"
        "print(function_code(make({'cat', 'dog', 'bird', 'ant'}), 'xxh128')[0]['closure_digest'])\n"
    )
    got = {run_python(code, PYTHONHASHSEED=str(seed)).strip() for seed in (1, 2, 3)}
    assert len(got) == 1


def make_scaler(factor: Any) -> Any:
    def scale(x: float) -> float:
        return x * factor

    return scale


def test_closure_values_count() -> None:
    """Two closures with one body but different captured values have different identities."""
    a, _ = function_code(make_scaler(2), ALGO)
    b, _ = function_code(make_scaler(3), ALGO)
    c, _ = function_code(make_scaler(2), ALGO)
    assert a["source_digest"] == b["source_digest"]
    assert a["closure_digest"] != b["closure_digest"]
    assert a["closure_digest"] == c["closure_digest"]
    lst, _ = function_code(make_scaler([1, 2]), ALGO)
    assert lst["closure_digest"] not in (a["closure_digest"], b["closure_digest"])


def test_closure_over_unstorable_value_still_has_an_identity() -> None:
    """A closure over a value that cannot be encoded is identified by the value's type."""
    import threading

    rec, warns = function_code(make_scaler(threading.Lock()), ALGO)
    assert warns == []
    assert rec["closure_digest"].startswith(ALGO + ":")


def test_closure_over_an_uncopyable_dataclass_has_an_identity() -> None:
    """A closure over a dataclass holding a lock gets an identity; nothing raises."""
    import dataclasses
    import threading

    @dataclasses.dataclass
    class Cfg:
        lr: float
        lock: Any

    rec, warns = function_code(make_scaler(Cfg(0.1, threading.Lock())), ALGO)
    assert warns == []
    assert rec["closure_digest"].startswith(ALGO + ":")


def test_closure_change_shows_in_the_run(ledger: Ledger) -> None:
    """Tracked closures record a closure digest that changes when the captured value does."""
    digests = []
    for factor in (2, 3):
        f = ledger.tracked(make_scaler(factor))
        f(1.0)
        run_id = max(entry_run_id(k) for k in ledger.store.backend.list("runs"))
        digests.append(reopen(ledger).get(run_id).code["closure_digest"])
    assert digests[0] != digests[1]


SRC = "def generated(x):\n    return x in {'alpha', 'beta', 'gamma', 'delta'}\n"


def exec_function(src: str, name: str = "generated") -> Any:
    ns: dict[str, Any] = {}
    exec(compile(src, "<generated>", "exec"), ns)
    return ns[name]


def test_no_source_falls_back_to_bytecode_with_a_warning() -> None:
    """A function made from a string has no source: its identity is the bytecode digest."""
    f = exec_function(SRC)
    rec, warns = function_code(f, ALGO)
    assert rec["source_from"] == "bytecode"
    assert rec["source_digest"].startswith(ALGO + ":")
    assert any("bytecode" in w for w in warns)
    same, _ = function_code(exec_function(SRC), ALGO)
    other, _ = function_code(exec_function(SRC.replace("x in", "x not in")), ALGO)
    assert same["source_digest"] == rec["source_digest"]
    assert other["source_digest"] != rec["source_digest"]


def test_bytecode_fallback_warning_reaches_the_run(ledger: Ledger) -> None:
    """A tracked function without source runs; the run records the bytecode warning."""
    f = ledger.tracked(exec_function(SRC))
    assert f("beta") is True
    run_id = max(entry_run_id(k) for k in ledger.store.backend.list("runs"))
    got = reopen(ledger).get(run_id)
    assert got.code["source_from"] == "bytecode"
    assert any("bytecode" in w for w in got.warnings)


def test_bytecode_digest_is_the_same_in_every_process() -> None:
    """The bytecode digest does not depend on the process's string hash seed."""
    code = (
        "from mlledger.capture.code import function_code\n"
        f"ns = {{}}\nexec(compile({SRC!r}, '<generated>', 'exec'), ns)\n"
        "print(function_code(ns['generated'], 'xxh128')[0]['source_digest'])\n"
    )
    digests = {run_python(code, PYTHONHASHSEED=str(seed)).strip() for seed in (1, 2, 3, 4)}
    assert len(digests) == 1


def test_code_record_is_cached_per_function() -> None:
    """Asking twice for the same function gives the cached record (cheap in a tight loop)."""
    a = function_code(plain, ALGO)
    b = function_code(plain, ALGO)
    assert a is b


def test_digests_follow_the_store_algorithm() -> None:
    """The same function asked for under two algorithms gets digests of each (no cache mix-up)."""
    user_modules(ALGO)
    a, _ = function_code(plain, ALGO)
    b, _ = function_code(plain, "sha256")
    assert a["source_digest"].startswith("xxh128:")
    assert b["source_digest"].startswith("sha256:")
    assert b["module_digest"].startswith("sha256:")
    assert all(d.startswith("sha256:") for d in user_modules("sha256").values())


def test_sha256_store_records_sha256_code_digests(
    tmp_path: Path, workdir: Path
) -> None:
    """A run in a sha256 store records sha256 code digests, even after xxh128 runs."""
    Ledger(str(tmp_path / "x")).tracked(plain)(1)
    strong = Ledger(str(tmp_path / "s"), algorithm="sha256")
    strong.tracked(plain)(1)
    run_id = max(entry_run_id(k) for k in strong.store.backend.list("runs"))
    code = reopen(strong).get(run_id).code
    assert code["source_digest"].startswith("sha256:")
    assert code["module_digest"].startswith("sha256:")
    assert code["modules"].startswith("sha256:")


def test_builtin_without_code_warns() -> None:
    """A callable with neither source nor bytecode is named, with a warning."""
    rec, warns = function_code(len, ALGO)
    assert rec["qualname"] == "len"
    assert "source_digest" not in rec
    assert warns
    assert "no source" in warns[0]


def test_source_code_of_a_cell() -> None:
    """A notebook cell or a script as text is identified by the digest of its text."""
    rec = source_code("x = 1\n", "cell", "cell-3", ALGO)
    assert rec == {"kind": "cell", "qualname": "cell-3",
                   "source_digest": digest_bytes(b"x = 1\n", ALGO)}


# ---------------------------------------------------------------------------
# the user's modules


def test_user_modules_include_a_helper_module(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module of the user's own, imported from anywhere, appears in the run's modules map."""
    _, helper = import_fresh(
        tmp_path / "lib", "mlledger_test_helper_a", "def f():\n    return 1\n", monkeypatch
    )
    with ledger.run("r") as run:
        pass
    got = reopen(ledger).get(run.id)
    modules = __import__("json").loads(ledger.store.get(got.code["modules"]))
    assert modules["mlledger_test_helper_a"] == digest_bytes(helper.read_bytes(), ALGO)
    assert not any(m == "mlledger" or m.startswith("mlledger.") for m in modules)
    assert "json" not in modules
    assert "attrs" not in modules
    assert "pytest" not in modules


def test_an_edited_and_reloaded_helper_module_changes_the_record(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing a helper module (and reloading it) shows as a new digest in the next run."""
    mlledger_test_helper_b, helper = import_fresh(
        tmp_path / "lib", "mlledger_test_helper_b", "VALUE = 1\n", monkeypatch
    )
    with ledger.run("r") as first:
        pass
    helper.write_text("VALUE = 22\n")
    importlib.reload(mlledger_test_helper_b)
    with ledger.run("r") as second:
        pass
    fresh = reopen(ledger)
    load = __import__("json").loads
    a = load(ledger.store.get(fresh.get(first.id).code["modules"]))["mlledger_test_helper_b"]
    b = load(ledger.store.get(fresh.get(second.id).code["modules"]))["mlledger_test_helper_b"]
    assert a != b
    assert b == digest_bytes(b"VALUE = 22\n", ALGO)


def test_a_module_imported_again_from_another_folder_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping a user module and importing one of the same name from elsewhere keeps the
    count of loaded modules, yet the next record follows the new file."""
    name = "mlledger_test_helper_moved"
    import_fresh(tmp_path / "one", name, "VALUE = 1\n", monkeypatch)
    assert user_modules(ALGO)[name] == digest_bytes(b"VALUE = 1\n", ALGO)
    count = len(sys.modules)
    del sys.modules[name]
    import_fresh(tmp_path / "two", name, "VALUE = 2\n", monkeypatch)
    assert len(sys.modules) == count
    assert user_modules(ALGO)[name] == digest_bytes(b"VALUE = 2\n", ALGO)


def test_a_module_replaced_in_place_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sys.modules[name] = a module loaded from another file`` (importing a file by path)
    changes neither the count nor the newest entry, yet the next record follows it."""
    import importlib.util

    name = "mlledger_test_helper_replaced"
    import_fresh(tmp_path / "one", name, "VALUE = 1\n", monkeypatch)
    import_fresh(tmp_path / "newer", f"{name}_newer", "", monkeypatch)  # not the newest

    assert user_modules(ALGO)[name] == digest_bytes(b"VALUE = 1\n", ALGO)
    other = tmp_path / "two" / f"{name}.py"
    other.parent.mkdir()
    other.write_text("VALUE = 2\n")
    spec = importlib.util.spec_from_file_location(name, other)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    assert user_modules(ALGO)[name] == digest_bytes(b"VALUE = 2\n", ALGO)


def test_user_modules_skip_stdlib_and_installed() -> None:
    """Standard-library and installed-distribution modules are not the user's."""
    mods = user_modules(ALGO)
    for name in ("os", "json", "attrs", "pytest", "hypothesis", "mlledger.runs"):
        assert name not in mods
    assert __name__ in mods  # this test module is the user's own


# ---------------------------------------------------------------------------
# git


def test_git_state_is_recorded_with_credentials_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commit, branch, remote without credentials, dirty flag, and the dirty diff as an object."""
    repo = tmp_path / "repo"
    commit = write_git_repo(repo, remote="https://user:s3cr3t@example.com/r.git")
    monkeypatch.chdir(repo)
    ledger = Ledger(str(tmp_path / "store"))

    with ledger.run("clean") as clean:
        pass
    code_mod.clear_git_cache()
    (repo / "tracked.txt").write_text("two\n")
    with ledger.run("dirty") as dirty:
        pass

    fresh = reopen(ledger)
    g = fresh.get(clean.id).git
    assert g is not None
    assert g["commit"] == commit
    assert g["branch"] == "main"
    assert g["remote"] == "https://example.com/r.git"
    assert g["dirty"] is False
    assert "diff" not in g
    d = fresh.get(dirty.id).git
    assert d is not None
    assert d["dirty"] is True
    assert d["commit"] == commit
    diff = ledger.store.get(d["diff"])
    assert b"-one" in diff
    assert b"+two" in diff
    raw = b"".join(ledger.store.read_entry(k) for k in ledger.store.backend.list("runs"))
    assert b"s3cr3t" not in raw
    assert b"user:" not in raw
    assert not any("git" in w for w in fresh.get(clean.id).warnings)


def test_dirty_diff_is_stored_byte_for_byte(tmp_path: Path) -> None:
    """The dirty diff is git's own bytes (non-UTF-8 text too), so it applies again."""
    repo = tmp_path / "repo"
    write_git_repo(repo)
    (repo / "tracked.txt").write_bytes(b"caf\xe9\n")  # Latin-1, not UTF-8
    rec, diff, _ = git_state(str(repo))
    assert rec is not None
    assert rec["dirty"] is True
    expected = subprocess.run(["git", "diff", "HEAD", "--no-color", "--no-ext-diff"],
                              cwd=repo, capture_output=True, check=True).stdout
    assert diff == expected
    assert b"+caf\xe9" in diff


def test_git_state_function(tmp_path: Path) -> None:
    """git_state() gives the record, the diff bytes and no warnings in a clean repository."""
    repo = tmp_path / "repo"
    commit = write_git_repo(repo)
    (repo / "sub").mkdir()
    rec, diff, warns = git_state(str(repo / "sub"))
    assert rec is not None
    assert rec["commit"] == commit
    assert rec["remote"] is None
    assert rec["root"] == str(repo)
    assert diff == b""
    assert warns == []


def test_untracked_files_do_not_make_the_tree_dirty(tmp_path: Path) -> None:
    """Only changes to tracked files make the repository dirty."""
    repo = tmp_path / "repo"
    write_git_repo(repo)
    (repo / "new.txt").write_text("untracked")
    rec, _, _ = git_state(str(repo))
    assert rec is not None
    assert rec["dirty"] is False


def test_not_a_git_repository_is_a_warning_line(ledger: Ledger) -> None:
    """Outside a git repository the run finishes with one warning line and no git state."""
    with ledger.run("r") as run:
        pass
    got = reopen(ledger).get(run.id)
    assert got.status == "finished"
    assert got.git is None
    assert [w for w in got.warnings if "git" in w] == [
        w for w in got.warnings if "not a git repository" in w
    ]
    assert len([w for w in got.warnings if "not a git repository" in w]) == 1


def test_git_missing_from_path_is_a_warning_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no ``git`` on PATH the run finishes with a warning and no git state."""
    repo = tmp_path / "repo"
    write_git_repo(repo)
    monkeypatch.chdir(repo)
    ledger = Ledger(str(tmp_path / "store"))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    @ledger.tracked
    def job() -> int:
        return 7

    assert job() == 7
    run_id = max(entry_run_id(k) for k in ledger.store.backend.list("runs"))
    got = reopen(ledger).get(run_id)
    assert got.status == "finished"
    assert got.git is None
    assert any("git is not on PATH" in w for w in got.warnings)


def test_broken_git_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``git`` that fails on every command gives warnings; the run still finishes."""
    repo = tmp_path / "repo"
    write_git_repo(repo)
    monkeypatch.chdir(repo)
    ledger = Ledger(str(tmp_path / "store"))
    bin_dir = tmp_path / "bad-bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\necho 'fatal: simulated' >&2\nexit 128\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert subprocess.run(["git", "status"], capture_output=True, check=False).returncode == 128
    with ledger.run("r") as run:
        pass
    got = reopen(ledger).get(run.id)
    assert got.status == "finished"
    assert any("simulated" in w for w in got.warnings)
