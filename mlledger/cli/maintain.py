"""Commands that look after the store: ``init``, ``restore``, ``verify``, ``gc``, ``sync``,
``reindex``."""

from __future__ import annotations

import sys

import click

from .._fmt import counted, human_size
from ..errors import UsageError
from ..store import store_exists
from .options import json_option
from .state import (
    State,
    close_progress,
    echo_json,
    pass_state,
    progress,
    resolve_artifact,
)

__all__ = ["gc", "init", "reindex", "restore", "sync", "verify"]


# ------------------------------------------------------------------------ init


@click.command()
@click.option(
    "--hash",
    "algorithm",
    type=click.Choice(["xxh128", "sha256"]),
    default=None,
    help="Digest algorithm of a new store (default xxh128; sha256 for adversarial settings). "
    "Fixed once the store exists.",
)
@click.option(
    "--require-message",
    is_flag=True,
    help="Set the policy that every run needs a message (an entry of the policy's history).",
)
@json_option()
@pass_state
def init(state: State, algorithm: str | None, require_message: bool, as_json: bool) -> None:
    """Create the store, or say where it already is."""
    from ..policy import Policy
    from ..store.store import Store

    url = state.store_url()
    existed = store_exists(url, state.options)
    store = Store(url, algorithm=algorithm, **state.options)
    policy = Policy(store)
    if require_message and not policy.get().get("require_message"):
        policy.set(require_message=True, message="mlledger init --require-message")
    if as_json:
        echo_json(
            {
                "url": store.url,
                "hash": store.algorithm,
                "created": not existed,
                "policy": policy.get(),
            }
        )
        return
    if existed:
        state.echo(f"mlledger store already at {store.url} ({store.algorithm})")
    else:
        state.echo(f"created an mlledger store at {store.url} ({store.algorithm})")
    if require_message:
        state.echo("every run needs a message (policy require_message)")


# --------------------------------------------------------------------- restore


@click.command()
@click.argument("target")
@click.argument("dest")
@click.option("-f", "--force", is_flag=True, help="Replace DEST if it exists.")
@json_option()
@pass_state
def restore(state: State, target: str, dest: str, force: bool, as_json: bool) -> None:
    """Write a stored file or folder to DEST, byte-identical.

    TARGET is a digest or hex prefix, RUN/NAME, @REF, a file or folder on
    disk, or a run with exactly one output.  Every byte is verified before
    DEST appears; an existing
    DEST is refused unless --force.  A progress bar shows on stderr when it
    is a terminal.  DEST "-" writes a file's bytes to stdout once all of
    them are checked (through a temp copy: a damaged object exits 1 with
    nothing written).
    """
    ledger = state.ledger()
    art = resolve_artifact(ledger, target)
    if dest == "-":
        if art.kind == "tree":
            raise UsageError(f"{target!r} is a folder: restore it to a path, not to stdout")
        from ..store.stream import copy_verified

        copy_verified(ledger.store, art.digest, sys.stdout.buffer)
        return
    cb = progress("restore", "file" if art.kind == "tree" else "B")
    try:
        path = ledger.restore(art.digest, dest, overwrite=force, callback=cb)
    finally:
        close_progress(cb)
    if as_json:
        echo_json(
            {
                "target": target,
                "digest": art.digest,
                "kind": art.kind,
                "size": art.size,
                "path": str(path),
            }
        )
        return
    what = f"{art.files} files, " if art.kind == "tree" and art.files is not None else ""
    state.echo(f"restored {art.kind} {art.digest} ({what}{human_size(art.size)}) to {path}")


# ---------------------------------------------------------------------- verify


@click.command()
@json_option()
@pass_state
def verify(state: State, as_json: bool) -> None:
    """Check the store; exit status 1 when anything is damaged.

    Rehashes every object and checks that everything a run, tree or ref
    references exists and is sound, and that no run, ref or policy entry
    was edited, removed or replaced (the seals and links of the audit trail).
    """
    ledger = state.ledger()
    cb = progress("verify", "obj")
    try:
        report = ledger.verify(callback=cb)
    finally:
        close_progress(cb)
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "corrupt": list(report.corrupt),
                "missing": list(report.missing),
                "dangling": [{"referrer": r, "digest": d} for r, d in report.dangling],
                "problems": list(report.problems),
                "trail": list(report.trail),
                "unchained": report.unchained,
                "damaged": [{"key": k, "reason": r} for k, r in report.damaged],
            }
        )
    else:
        n = len(report.corrupt) + len(report.missing) + len(report.problems) + len(report.trail)
        n += len(report.damaged)
        verdict = (
            click.style("ok", fg="green")
            if report.ok
            else click.style(counted(n, "problem"), fg="red")
        )
        state.echo(f"checked {counted(report.checked, 'object')}: {verdict}")
        for d in report.corrupt:
            state.echo(f"corrupt   {d}  (its bytes do not hash to its name)")
        referrers: dict[str, list[str]] = {}
        for r, d in report.dangling:
            referrers.setdefault(d, []).append(r)
        for d in report.missing:
            by = referrers.get(d)
            state.echo(f"missing   {d}" + (f"  (referenced by {', '.join(by)})" if by else ""))
        for p in report.problems:
            state.echo(f"problem   {p}")
        for p in report.trail:
            state.echo(f"damaged   {p}")
        if report.unchained:
            state.echo(
                f"note      {report.unchained} entries from before the audit chain "
                "(unsealed: not checked for edits)"
            )
        for key, why in report.damaged:
            state.echo(f"damaged   {key}  ({why}; its run is skipped)")
    if not report.ok:
        click.get_current_context().exit(1)


# -------------------------------------------------------------------------- gc


def _why_kept(because: dict[str, int]) -> str:
    """`` (2 a ref needs, 4 within the grace period)``: why gc kept the runs it kept."""
    words = {
        "ref": "a ref needs",
        "running": "running",
        "recent": "within --keep-days",
        "grace": "within --grace",
    }
    parts = [f"{n} {words.get(k, k)}" for k, n in because.items() if n]
    return f" ({', '.join(parts)})" if parts else ""


@click.command()
@click.option(
    "--dry-run/--delete",
    "dry_run",
    default=True,
    show_default=True,
    help="Only report what would go (the default), or really delete it.",
)
@click.option(
    "--keep-days",
    type=click.FloatRange(min=0),
    default=None,
    metavar="DAYS",
    help="Keep runs started within DAYS (and what they reference); older runs no ref needs "
    "go. Default: keep every run.",
)
@click.option(
    "--grace",
    "grace",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="Never delete an object younger than this (protects runs in progress).",
)
@click.option("-v", "--verbose", is_flag=True, help="List every run and object that goes.")
@json_option()
@pass_state
def gc(
    state: State,
    *,
    dry_run: bool,
    keep_days: float | None,
    grace: float,
    verbose: bool,
    as_json: bool,
) -> None:
    """Delete what nothing needs (only a report unless --delete).

    Kept: every target in every ref's history with its upstream lineage, every
    run kept by --keep-days (all by default) with what it references, every
    object younger than --grace, and every object a live run uses.
    """
    report = state.ledger().gc(dry_run=dry_run, keep_days=keep_days, grace_seconds=grace)
    if as_json:
        echo_json(report.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    temp = f", {counted(report.temp_files, 'temp file')}" if report.temp_files else ""
    if report.uploads:
        temp += f", {counted(report.uploads, 'unfinished upload')}"
    state.echo(
        f"{verb} {counted(len(report.runs), 'run')} and {counted(len(report.objects), 'object')} "
        f"({human_size(report.bytes)}){temp}; kept {counted(report.kept_runs, 'run')}"
        f"{_why_kept(report.kept_because)} and {counted(report.kept_objects, 'object')}"
    )
    if verbose:
        for r in report.runs:
            state.echo(f"run     {r}")
        for d in report.objects:
            state.echo(f"object  {d}")
    if dry_run and (report.runs or report.objects or report.temp_files or report.uploads):
        state.echo("dry run: nothing was deleted; pass --delete to delete", err=True)


# --------------------------------------------------------------- sync, reindex


@click.command()
@json_option()
@pass_state
def sync(state: State, as_json: bool) -> None:
    """Bring the local catalog up to date with the store.

    Other commands sync as they need to; this is for scripts and cron.
    """
    n = state.ledger().sync()
    if as_json:
        echo_json({"changed": n})
    else:
        state.echo(f"catalog synced: {counted(n, 'run')} changed")


@click.command()
@json_option()
@pass_state
def reindex(state: State, as_json: bool) -> None:
    """Rebuild the local catalog from the store alone (it is a cache)."""
    n = state.ledger().reindex()
    if as_json:
        echo_json({"runs": n})
    else:
        state.echo(f"catalog rebuilt: {counted(n, 'run')}")
