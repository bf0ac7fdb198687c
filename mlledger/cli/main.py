"""The ``mlledger`` group: its options, every failure turned into one line and an exit
status, and ``main()`` (the console script)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from .._fmt import one_line
from .._settings import DEBUG, URL
from ..errors import IntegrityError, LedgerError
from .browse import artifact, diff, lineage, log, show
from .changelog import changelog
from .check import check
from .imports import import_group
from .maintain import gc, init, reindex, restore, sync, verify
from .options import parse_storage_options
from .policy import policy
from .refs import ref
from .report import report
from .run import run
from .state import State
from .usage import cost, du
from .watch import watch

__all__ = ["CliError", "CliFailure", "cli", "cli_error", "main"]


class CliError(click.ClickException):
    """An error the command line reports as one line: bad usage, exit status 2."""

    exit_code = 2  # a class attribute, as click declares it

    def show(self, file: Any = None) -> None:
        click.echo(f"mlledger: error: {self.format_message()}", err=True)


class CliFailure(CliError):
    """An error the command line reports as one line: a failed check or a bug, exit 1."""

    exit_code = 1


def cli_error(message: str, exit_code: int) -> CliError:
    """The one-line error for ``exit_code`` (1: something failed; else bad usage, 2)."""
    return CliFailure(message) if exit_code == 1 else CliError(message)


# ------------------------------------------------------------------ error handling


class _Group(click.Group):
    """The top-level group: turns every failure into one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            raise
        except LedgerError as e:
            self._debug_traceback(ctx, e)
            code = 1 if isinstance(e, IntegrityError) else 2
            raise cli_error(one_line(str(e)), code) from e
        except OSError as e:  # the operating system refused something the user asked for
            self._debug_traceback(ctx, e)
            where = f": {e.filename!r}" if getattr(e, "filename", None) else ""
            raise CliError(f"{e.strerror or e}{where}") from e
        except Exception as e:
            self._debug_traceback(ctx, e)
            hint = "" if ctx.params.get("debug") else "; rerun with --debug for the traceback"
            raise CliFailure(
                f"internal error ({type(e).__name__}: {one_line(str(e))}); this is a bug in "
                f"mlledger, please report it{hint}"
            ) from e

    @staticmethod
    def _debug_traceback(ctx: click.Context, e: BaseException) -> None:
        if ctx.params.get("debug"):
            import traceback  # only for --debug: it costs every command's start-up

            traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args,
                prog_name,
                complete_var,
                False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        try:
            rv = super().main(
                args,
                prog_name or "mlledger",
                complete_var,
                False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            click.echo(f"mlledger: error: {one_line(e.format_message())}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("mlledger: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


# ------------------------------------------------------------------------ the group


@click.group(
    cls=_Group,
    name="mlledger",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--store",
    "url",
    envvar=URL,
    show_envvar=True,
    metavar="URL",
    help="The store: a folder or any fsspec URL (s3://bucket/ml, memory://x...). "
    "Default: $MLLEDGER_URL, else the user data folder.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=parse_storage_options,
    help="A storage option for fsspec (repeatable); VALUE is decoded as JSON when it parses, "
    "a dotted KEY nests (client_kwargs.endpoint_url=...).",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar=DEBUG,
    help="Show the traceback of an error, not just its one-line message.",
)
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour the output (default: only when it is a terminal and $NO_COLOR is unset).",
)
@click.version_option(
    package_name="mlledger",
    message="mlledger %(version)s",
    help="Show mlledger's version and exit.",
)
@click.pass_context
def cli(
    ctx: click.Context, url: str | None, options: dict[str, Any], debug: bool, color: bool | None
) -> None:
    """A ledger of machine-learning runs: what each run read, ran with and produced.

    Targets: a digest or unique hex prefix (6+), a run id or unique prefix,
    RUN/NAME (one output or input of a run), @REF, or a file or folder on
    disk (the artifact holding its bytes).  Exit status: 0 success, 1 a
    failed check, 2 bad usage or input.  '--json' on reading commands prints
    stable JSON (shapes in the module docs: python -m pydoc mlledger.cli).
    """
    ctx.obj = State(url, options, color)


# the commands by area: browse.py, changelog.py, check.py, imports.py, maintain.py,
# policy.py, refs.py, report.py, run.py, usage.py, watch.py
for _command in (
    artifact, check, diff, lineage, log, show, gc, init, reindex, restore, sync, verify
):  # fmt: skip
    cli.add_command(_command)
cli.add_command(changelog)
cli.add_command(ref)
cli.add_command(policy)
cli.add_command(run)
cli.add_command(import_group)
cli.add_command(watch)
cli.add_command(report)
cli.add_command(cost)
cli.add_command(du)


def main() -> None:
    """The ``mlledger`` console script."""
    cli.main(prog_name="mlledger")
