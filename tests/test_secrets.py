"""Nothing secret leaves the process: planted secrets are found nowhere under the store,
the catalog, the caches or the spool after the runs that held them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.runs import python_env

from mlledger.capture.redact import (
    REDACTED,
    redact_argv,
    redact_pairs,
    scrub,
    secret_attributes,
)

#: each secret, by where it was planted
PLANTED = {
    "message URL credentials": "S1urlpw7731",
    "pickled object's password attribute": "S2pickled9911",
    "repr of an unpicklable object": "S3repr5521",
    "exception message (name=value)": "S4exc8842",
    "traceback source line": "S4tb3321",
    "exception message (a secret param's value)": "S6param4417",
    "-p on the command line": "S5argv4410",
    "-p attached on the command line": "S7argv0017",
    "token attribute inside a pickled list": "S8nested2290",
}

_SCRIPT = '''
import sys, threading, mlledger

led = mlledger.Ledger(sys.argv[1], start_delay=0)

class Conn:                      # picklable (not a dataclass: those are JSON), a password
    def __init__(self, host, password):
        self.host = host
        self.password = password

class Client:                    # unpicklable (a lock), its repr shows its token
    def __init__(self, token):
        self.token = token
        self.lock = threading.Lock()
    def __repr__(self):
        return f"Client(url=https://svc, token={self.token})"

class Holder:
    def __init__(self, token):
        self.token = token

@led.tracked
def train(conn, client, batch, lr=0.1):
    return lr

train(Conn("db", "S2pickled9911"), Client("S3repr5521"), [Holder("S8nested2290x")])

with led.run("why", message="data from postgres://alice:S1urlpw7731@db/x") as run:
    pass

def login(user, password):
    raise RuntimeError(f"cannot log in as {user} with {password}; api_key=S4exc8842")

@led.tracked
def fails(user, password):
    login(user, password="S4tb3321" if False else password)

try:
    fails("bob", "S6param4417")
except RuntimeError:
    pass
print("ok")
'''


def _found(roots: list[Path], secret: str) -> int:
    """How many times ``secret``'s bytes occur in every file under ``roots``."""
    needle = secret.encode()
    n = 0
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                try:
                    n += Path(dirpath, name).read_bytes().count(needle)
                except OSError:
                    pass
    return n


@pytest.mark.slow
def test_planted_secrets_are_found_nowhere_under_the_store_and_caches(tmp_path: Path) -> None:
    """A run process holding secrets in a message, a pickled object, an unpicklable
    object's repr, an exception and its traceback, and ``-p`` options leaves none of
    their bytes in the store, the catalog, the caches or the spool."""
    script = tmp_path / "job.py"
    script.write_text(_SCRIPT)
    store = tmp_path / "store"
    home = tmp_path / "home"
    env = {
        **python_env(),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
    }
    out = subprocess.run(
        [sys.executable, str(script), str(store), "-p", "S5argv4410", "-pS7argv0017"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    # the catalog is built too (reindex reads every record into SQLite)
    subprocess.run(
        [sys.executable, "-c", "from mlledger.cli import main; main()", "--store", str(store),
         "reindex"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
        check=True,
    )
    roots = [store, home]
    found = {where: _found(roots, s) for where, s in PLANTED.items()}
    print(found)
    assert found == dict.fromkeys(PLANTED, 0), found


# -- the rules, one by one ------------------------------------------------------------------


def test_short_p_options_hide_their_value_but_not_a_port() -> None:
    """``-p VALUE`` and ``-pVALUE`` hide the value; a number after ``-p`` (a port) stays."""
    assert redact_argv(["mysql", "-p", "hunter22", "-u", "me"]) == [
        "mysql", "-p", REDACTED, "-u", "me"]
    assert redact_argv(["mysql", "-phunter22"]) == ["mysql", f"-p{REDACTED}"]
    assert redact_argv(["ssh", "-p", "2222", "host"]) == ["ssh", "-p", "2222", "host"]
    assert redact_argv(["tar", "-xvf", "a.tar"]) == ["tar", "-xvf", "a.tar"]


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("login failed: password=hunter22 for bob", f"login failed: password={REDACTED} for bob"),
        ("connect(host='db', password='hunter22')", f"connect(host='db', password='{REDACTED}')"),
        ('{"api_key": "abc123xyz", "lr": 0.1}', f'{{"api_key": "{REDACTED}", "lr": 0.1}}'),
        ("Client(token: s3cr3t-value)", f"Client(token: {REDACTED})"),
        ("max_tokens=100, tokenizer=bpe, author=me", "max_tokens=100, tokenizer=bpe, author=me"),
        ("sorted(xs, key=len)", "sorted(xs, key=len)"),
    ],
)
def test_name_value_pairs_with_secret_names_are_redacted_in_text(text: str, clean: str) -> None:
    """``NAME=value``, ``NAME: value`` and quoted forms hide the value of a secret NAME only."""
    assert redact_pairs(text) == clean


def test_scrub_masks_known_secret_values_anywhere_in_text() -> None:
    """A value known to be secret is masked wherever it appears, with URLs and pairs cleaned."""
    text = "as bob with hunter22 at https://u:pw@h/x (token=abc12345678)"
    assert scrub(text, ["hunter22"]) == (
        f"as bob with {REDACTED} at https://h/x (token={REDACTED})"
    )


def test_secret_attributes_are_found_in_dicts_slots_and_nested_objects() -> None:
    """Secret-named attributes are seen in ``__dict__``, slots, and objects inside them."""

    class Slotted:
        __slots__ = ("api_key", "n")

        def __init__(self) -> None:
            self.api_key = "k-123456789"
            self.n = 1

    class Outer:
        def __init__(self) -> None:
            self.inner = [{"cfg": Slotted()}]
            self.key = "short"  # a bare 'key' hides only a credential-like value

    assert secret_attributes(Outer()) == {"api_key": "k-123456789"}
    assert secret_attributes(Slotted()) == {"api_key": "k-123456789"}
    assert secret_attributes([1, "x"]) == {}


class Conn:
    """A picklable object holding a password."""

    def __init__(self, host: str, password: str) -> None:
        self.host = host
        self.password = password


class Model:
    """A picklable object with no secret (an array and a tokenizer name)."""

    def __init__(self) -> None:
        import numpy as np

        self.weights = np.arange(4.0)
        self.tokenizer = "bpe"


def test_an_object_holding_a_password_is_its_type_and_a_redacted_repr(tmp_path: Path) -> None:
    """A picklable object with a secret-named attribute is not pickled: its param is its
    type and a repr with the secret redacted, and a warning names the attribute."""
    from helpers.runs import reopen

    from mlledger import Ledger

    ledger = Ledger(str(tmp_path / "store"))
    with ledger.run("r", params={"conn": Conn("db", "hunter22x"), "model": Model()}) as run:
        pass
    got = reopen(ledger).get(run.id)
    assert got.params["conn"]["repr"] == f"Conn(host='db', password={REDACTED})"
    assert "conn" not in got.inputs
    assert any("conn" in w and "password" in w for w in got.warnings), got.warnings
    assert got.inputs["model"].format == "pickle"  # nothing secret in it: stored as before
    assert "hunter22x" not in str(got.record)


def test_a_failed_runs_error_masks_secrets_nested_in_its_params(tmp_path: Path) -> None:
    """A value under a secret name inside a config param is masked in the failed run's
    exception message and traceback; the exception itself reaches the caller unchanged."""
    from helpers.runs import reopen

    from mlledger import Ledger

    ledger = Ledger(str(tmp_path / "store"))
    cfg = {"db": {"host": "h", "password": "nested-pw-123"}}
    with pytest.raises(RuntimeError, match="nested-pw-123"), ledger.run("r", params={"cfg": cfg}):
        raise RuntimeError("cannot connect with nested-pw-123")
    (run,) = reopen(ledger).runs()
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.message == f"cannot connect with {REDACTED}"
    assert "nested-pw-123" not in run.error.traceback
