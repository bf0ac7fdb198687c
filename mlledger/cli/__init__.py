"""The ``mlledger`` command line: ``mlledger [--store URL] [--option KEY=VALUE ...] COMMAND``.

Commands: ``init``, ``log``, ``show RUN``, ``diff A B``, ``lineage TARGET``,
``artifact TARGET``, ``restore TARGET DEST``, ``ref set|get|log|rollback|list``,
``check [RUN]``, ``verify``, ``gc``, ``sync``, ``reindex`` and ``run``.

The store is ``--store URL``, else ``$MLLEDGER_URL``, else the folder in the
user data directory that ``mlledger.Ledger()`` opens.  ``--option KEY=VALUE``
(repeatable) passes fsspec storage options: a value that parses as JSON
(numbers, ``true``/``false``, ``null``, lists, objects) is used decoded, any
other value as a string; a dotted key (``client_kwargs.endpoint_url=...``)
builds nested mappings.  Only ``init`` and ``run`` create a store; the other
commands refuse a URL where there is none, so a typo never makes an empty store.

A *target* is a digest or unique hex prefix (at least 6), a run id or unique
prefix, ``RUN/NAME`` for one named output (or input) of a run, ``@REF``, or a
file or folder on disk (the artifact holding exactly its bytes).

Short run ids: listings show the shortest prefix of each run id, at least 12
characters, that no other run in the local catalog shares (run ids are
time-sortable, so runs started in the same millisecond show longer prefixes).
Any unique prefix is accepted wherever a run is expected.

``mlledger run [OPTIONS] script.py [ARGS...]`` runs a Python script in this
process as one run, with full capture (the files it reads and writes, the
environment, the script's digest as its code identity, ``argv`` as its params).
``mlledger run [OPTIONS] [--exec] -- COMMAND [ARGS...]`` runs any other
program as a subprocess inside a run: the script form is chosen when the first
word ends in ``.py`` and ``--exec`` is not given.  A subprocess's file accesses
are not visible, so its inputs and outputs are the ``--input``/``--output``
paths (both forms accept them): inputs are stored when the run starts, outputs
when the program ends.  Exit status: the program's own; an exception in a
script is exit status 1; a declared output that a successful program did not
write fails the run with status 1.  The program's stdout is left alone;
mlledger's one summary line goes to stderr (``--quiet`` drops it).  Programs
that use mlledger themselves see ``$MLLEDGER_URL`` pointing at the same store.

Exit status: 0 success; 1 a check failed (``verify`` found damage, a stored
object did not match its digest, a ``run`` output is missing) or mlledger hit
an unexpected internal error (the message says so); 2 bad usage or bad input
(unknown or ambiguous run, bad ``--where``, existing destination without
``--force``, a store URL that cannot be opened...).  Errors print one line,
``mlledger: error: ...``, on stderr; ``--debug`` (or ``MLLEDGER_DEBUG=1``)
adds the traceback.  Progress bars (restore, verify) appear on stderr only
when stderr is a terminal.

JSON (``--json``), stable for scripts; timestamps are ISO 8601 UTC strings.
An *Artifact* is ``{"digest", "size", "kind": "file"|"tree"|"value"}`` plus
``"format"`` (values), ``"path"`` (files and trees), ``"files"`` (trees) when
known.  A *RefEntry* is ``{"name", "seq", "target", "at", "user", "host",
"message", "action": "set"|"rollback", "restores": int|null, "run": id|null}``,
plus the audit chain's ``"prev"``, ``"seal"`` and ``"run_entry"`` (digests) in
entries that have them, and ``"force": true`` in a move that overrode a
protected ref's policy.  A *CheckReport* is ``{"run_id", "at", "ok", "user",
"results": [{"rule", "field", "value", "baseline", "change", "ok", "message",
"baseline_run", "spec"}]}`` (numbers or null; NaN as text).

- ``log``: a list of ``{"id", "name", "status", "kind", "started_at",
  "ended_at", "wall_s", "cost", "currency", "parent_id", "message", "user",
  "host", "tags", "params", "metrics": {KEY: last value}}``, in the listing's
  order (``cost`` and ``currency`` null for a run not priced).
- ``show``: the run's whole record (``Run.record``: ``id``, ``name``,
  ``kind``, ``status``, ``started_at``, ``ended_at``, ``message``, ``tags``,
  ``params``, ``metrics: {KEY: {"last", "min", "max", "step", "count"}}``,
  ``inputs``/``outputs: {NAME: Artifact}``, ``code``, ``git``, ``env``
  (digest), ``process``, ``resources`` (with ``cost`` and ``currency`` when
  priced), ``error: {"type", "message",
  "traceback"}`` when it failed, ``warnings``, ``parent_id``, ``user``,
  ``host``) plus ``"environment"``: the environment record (``python``,
  ``platform``, ``host``, ``packages``, ``env_vars``, ``process``).
- ``diff``: ``{"a": id, "b": id, "changes": [{"section", "key", "old",
  "new", "kind": "added"|"removed"|"changed"}]}`` (``--exit-code``: exit 1
  when ``changes`` is not empty).
- ``lineage``: ``{"root", "direction", "runs": [{"id", "name", "status",
  "started_at"}], "artifacts": [Artifact], "edges": [{"source", "label":
  "used"|"produced"|"child_of", "target"}]}``.
- ``artifact``: Artifact plus ``"producers"`` and ``"consumers"`` (run ids),
  and with ``--files`` ``"entries"``: ``[{"path", "digest", "size",
  "exec"} | {"path", "link"} | {"path", "dir": true}]``.
- ``restore``: ``{"target", "digest", "kind", "size", "path"}``.
- ``cost``: ``{"by", "since", "where", "groups": [Group], "total": Group,
  "nested"}``, a Group being ``{"group", "runs", "hours", "cost", "currency",
  "costs": {CURRENCY: amount}, "priced", "not_priced"}`` (``currency`` is
  ``"mixed"`` when the runs were priced in several), most expensive first;
  ``nested`` counts runs left out because their parent is counted.
- ``du``: ``{"objects", "stored_bytes", "logical_bytes", "distinct_bytes",
  "saved_bytes", "artifacts", "runs", "storage_gb_month", "monthly_cost",
  "currency", "by", "groups": [{"group", "runs", "referenced", "distinct",
  "exclusive"}]}``.
- ``ref set``, ``ref get``, ``ref rollback``: a RefEntry; ``ref log``: the
  ref's RefEntries oldest first; ``ref list``: each ref's current RefEntry,
  by name.
- ``verify``: ``{"ok", "checked", "corrupt": [digest], "missing": [digest],
  "dangling": [{"referrer", "digest"}], "problems": [text], "trail": [text],
  "unchained": int, "damaged": [{"key", "reason"}]}`` (``trail``: damage to the audit
  trail; ``unchained``: entries from before it; ``damaged``: run entries that are not a
  readable record).
- ``gc``: ``{"dry_run", "runs": [id], "objects": [digest], "bytes",
  "kept_runs", "kept_objects", "temp_files", "uploads", "kept_because": {reason: runs}}``;
  deleted plus kept is every run (every object); a kept run's reason is ``ref``,
  ``running``, ``recent`` (``--keep-days``) or ``grace``.
- ``init``: ``{"url", "hash", "created"}``; ``sync``: ``{"changed"}``;
  ``reindex``: ``{"runs"}``.
"""

from __future__ import annotations

from .main import cli, main

# the error types a failed `mlledger run` records, under the names runs know them by
from .run import OutputMissing, ProgramFailed

__all__ = ["OutputMissing", "ProgramFailed", "cli", "main"]
