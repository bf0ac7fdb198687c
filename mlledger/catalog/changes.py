"""What changed in the catalog since a watcher last looked, and the watcher's own notes.

Every write of a run into the index gives its row a larger rowid than any row
had before (``bulk.insert_records``), so ``rowid > cursor`` lists exactly the runs
that appeared or changed (a status moved from ``running`` to ``failed``, a
heartbeat went stale) since the cursor, at a cost that grows with the changes,
not with the ledger.  A watcher keeps, in the catalog's ``meta`` table, its
cursor (``watch:<name>``: dropped when the index is rebuilt, so the watcher
starts over from its horizon) and the alerts whose delivery is not settled yet
(``watch-pending:<name>:<key>``: kept across rebuilds), one row each, so two
processes of one watcher never lose each other's notes; and, for facts judged
again on every pass (a live monitor run's rule), the key it last raised per
slot (``watch-said:<name>:<run id>:<rule>``), so a breach is reported once.
"""

from __future__ import annotations

from typing import Any

from .. import canonical
from . import files

__all__ = ["Changes"]


def _cursor_key(name: str) -> str:
    return f"watch:{name}"


def _pending_prefix(name: str) -> str:
    return f"watch-pending:{name}:"


def _said_prefix(name: str) -> str:
    return f"watch-said:{name}:"


class Changes(files.CatalogFiles):
    """The catalog's change listing and watcher notes (mixed into ``Catalog``)."""

    @files.healing
    def last_change(self) -> int:
        """The rowid of the newest write (0 for an empty index)."""
        row = self.db.execute("SELECT max(rowid) FROM runs").fetchone()
        return int(row[0] or 0)

    @files.healing
    def changes_since(
        self, cursor: int, upto: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """``(rowid, record)`` of every run written after ``cursor`` (up to ``upto``), in
        the order they were written."""
        q = "SELECT rowid, record FROM runs WHERE rowid > ?"
        args: list[Any] = [cursor]
        if upto is not None:
            q += " AND rowid <= ?"
            args.append(upto)
        rows = self.db.execute(q + " ORDER BY rowid", args).fetchall()
        return [(int(r), dict(canonical.loads(rec))) for r, rec in rows]

    @files.healing
    def started_since(self, first_id: str, upto: int) -> list[tuple[int, dict[str, Any]]]:
        """``(rowid, record)`` of the runs whose id is at least ``first_id`` (started at or
        after its time), written up to ``upto``."""
        rows = self.db.execute(
            "SELECT rowid, record FROM runs WHERE id >= ? AND rowid <= ? ORDER BY rowid",
            (first_id, upto),
        ).fetchall()
        return [(int(r), dict(canonical.loads(rec))) for r, rec in rows]

    @files.healing
    def live_runs(self, kind: str) -> list[dict[str, Any]]:
        """The records of the runs of ``kind`` indexed as ``running``."""
        rows = self.db.execute(
            "SELECT record FROM runs WHERE status = 'running' AND kind = ? ORDER BY id", (kind,)
        ).fetchall()
        return [dict(canonical.loads(rec)) for (rec,) in rows]

    # -- a watcher's notes ------------------------------------------------------------
    @files.healing
    def watch_cursor(self, name: str) -> int | None:
        """Where the watcher ``name`` stopped (None: it never looked at this index)."""
        row = self.db.execute(
            "SELECT value FROM meta WHERE key = ?", (_cursor_key(name),)
        ).fetchone()
        return None if row is None else int(row[0])

    @files.healing
    def advance_watch_cursor(self, name: str, cursor: int) -> None:
        """Move the cursor of ``name`` to ``cursor``, never back (two processes of one
        watcher may finish their passes in any order)."""
        with self.db:
            self.db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                "CASE WHEN CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER) "
                "THEN excluded.value ELSE value END",
                (_cursor_key(name), str(int(cursor))),
            )

    @files.healing
    def pending_alerts(self, name: str) -> dict[str, dict[str, Any]]:
        """The alerts (key -> JSON) the watcher ``name`` has not settled yet."""
        prefix = _pending_prefix(name)
        rows = self.db.execute(
            "SELECT key, value FROM meta WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff")
        ).fetchall()
        return {k[len(prefix) :]: dict(canonical.loads(v)) for k, v in rows}

    @files.healing
    def keep_pending(self, name: str, key: str, alert: dict[str, Any]) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (_pending_prefix(name) + key, canonical.dumps(alert).decode("utf-8")),
            )

    @files.healing
    def drop_pending(self, name: str, key: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM meta WHERE key = ?", (_pending_prefix(name) + key,))

    @files.healing
    def said(self, name: str) -> dict[str, str]:
        """The key the watcher ``name`` last raised per slot (``<run id>:<rule>``)."""
        prefix = _said_prefix(name)
        rows = self.db.execute(
            "SELECT key, value FROM meta WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff")
        ).fetchall()
        return {k[len(prefix) :]: str(v) for k, v in rows}

    @files.healing
    def note_said(self, name: str, slot: str, key: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (_said_prefix(name) + slot, key)
        )

    @files.healing
    def forget_said(self, name: str, slots: list[str]) -> None:
        self.db.executemany(
            "DELETE FROM meta WHERE key = ?", [(_said_prefix(name) + s,) for s in slots]
        )
