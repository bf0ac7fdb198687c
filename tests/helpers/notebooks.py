"""Running real notebooks in a real kernel for the tests: a kernelspec for this
interpreter, a notebook executed cell by cell with nbclient, and what it left.

Kernel choice: the ``python3`` kernelspec.  jupyter_client runs a spec whose
command is ``python`` with this interpreter, so an installed default spec is
used as it is; when there is none, or it names another interpreter, the suite
writes one pointing at ``sys.executable`` in a temporary folder and puts that
folder first on ``JUPYTER_PATH`` (nothing is installed in the user's folders).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import mlledger

KERNEL = "python3"



@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Extra environment that makes ``python3`` a kernel running this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    same = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    root = tmp_path_factory.mktemp("jupyter")
    with pytest.MonkeyPatch.context() as mp:  # look as the kernels will: no user kernelspecs
        mp.setenv("XDG_DATA_HOME", str(root / "empty"))
        try:
            argv = KernelSpecManager().get_kernel_spec(KERNEL).argv
            if argv and (argv[0] in same or os.path.samefile(argv[0], sys.executable)):
                return {}
        except (NoSuchKernel, OSError):
            pass
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (mlledger tests)",
        "language": "python",
    }))
    path = os.pathsep.join(p for p in (str(root), os.environ.get("JUPYTER_PATH", "")) if p)
    return {"JUPYTER_PATH": path}


@dataclass
class Executed:
    """A notebook after its run: the cells with outputs, the errors, the store it wrote."""

    nb: Any
    store: str
    workdir: Path
    raised: dict[int, str] = field(default_factory=dict)  # cell index -> ename of the reply

    def text(self, i: int) -> str:
        """Everything cell ``i`` printed or displayed as text."""
        parts: list[str] = []
        for o in self.nb.cells[i].outputs:
            if o.output_type == "stream":
                parts.append(o.text)
            elif o.output_type in ("execute_result", "display_data"):
                parts.append(o.data.get("text/plain", ""))
            elif o.output_type == "error":
                parts.append("\n".join(o.traceback))
        return "".join(parts)

    def outputs(self, i: int) -> list[dict[str, Any]]:
        """Cell ``i``'s outputs as plain data, execution counts and cell numbers taken out."""
        out = []
        for o in json.loads(json.dumps(self.nb.cells[i].outputs)):
            o.pop("execution_count", None)
            if "traceback" in o:
                o["traceback"] = [re.sub(r"In\[\d+\]", "In[N]", t) for t in o["traceback"]]
            out.append(o)
        return out

    def ledger(self) -> mlledger.Ledger:
        return mlledger.Ledger(self.store)


def kernel_environment(workdir: Path, store: str, extra: dict[str, str]) -> dict[str, str]:
    base = workdir / "env"
    env = {"MLLEDGER_URL": store, "IPYTHONDIR": str(base / "ipython"), **extra}
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        env[var] = str(base / var.lower())
    for path in env.values():
        if path.startswith(str(base)):
            Path(path).mkdir(parents=True, exist_ok=True)
    return env


def execute(
    workdir: Path, sources: list[str], kernel_env: dict[str, str], order: list[int] | None = None
) -> Executed:
    """Write a notebook of ``sources`` in ``workdir``; run its cells (in ``order``) in a kernel."""
    workdir.mkdir(parents=True, exist_ok=True)
    store = str(workdir / "store")
    nb = _nb().v4.new_notebook()
    nb.cells = [_nb().v4.new_code_cell(s) for s in sources]
    path = workdir / "scenario.ipynb"
    _nb().write(nb, path)
    nb = _nb().read(path, as_version=4)
    done = Executed(nb, store, workdir)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in kernel_environment(workdir, store, kernel_env).items():
            mp.setenv(k, v)
        mp.delenv("MLLEDGER_DISABLE", raising=False)
        status: dict[int, str] = {}

        def replied(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
            content = execute_reply["content"]
            status[cell_index] = content["status"]
            if content["status"] == "error":
                done.raised[cell_index] = content.get("ename", "")

        # allow_errors: nbclient then sends each cell with stop_on_error=False.  With
        # stop_on_error=True a kernel aborts the execute requests that reach it right
        # after an error reply (ipykernel 6's _abort_queues: its "stop aborting" event
        # is queued one loop turn later), so the cell run next after a failing one was
        # now and then answered "aborted", never run: not what the tests are about.
        # The reply's status is what tells an error, as for CellExecutionError.
        client = _client().NotebookClient(
            nb,
            kernel_name=KERNEL,
            timeout=120,
            allow_errors=True,
            on_cell_executed=replied,
            resources={"metadata": {"path": str(workdir)}},
        )
        with client.setup_kernel():
            for i in order if order is not None else range(len(nb.cells)):
                client.execute_cell(nb.cells[i], i)
    _nb().write(nb, workdir / "executed.ipynb")
    bad = {i: s for i, s in status.items() if s not in ("ok", "error")}
    assert not bad, f"cells not run by the kernel (reply status): {bad}"
    return done


def by_name(ledger: mlledger.Ledger, name: str) -> mlledger.Run:
    """The one run called ``name``."""
    runs = list(ledger.runs(name=name))
    assert len(runs) == 1, [r.name for r in ledger.runs()]
    return runs[0]




def _nb() -> Any:
    return pytest.importorskip("nbformat")


def _client() -> Any:
    return pytest.importorskip("nbclient")
