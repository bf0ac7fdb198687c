"""The magics' arguments (mlledger.notebook.args): parsed as a shell splits them."""

from __future__ import annotations

import pytest

from mlledger.notebook.args import ArgError, ledger_parser, parse, track_all_parser, track_parser


def test_track_arguments_parse_and_fail_with_usage() -> None:
    """%%track takes a name, -m and repeated --tag K=V; anything else is an error with usage."""
    ns = parse(track_parser(), "train -m 'a message' --tag a=1 --tag b=x=y")
    assert (ns.name, ns.message, ns.tags) == ("train", "a message", {"a": "1", "b": "x=y"})
    for bad in ("--tag novalue", "-m 'open quote", "a b"):
        with pytest.raises(ArgError, match="usage: %%track"):
            parse(track_parser(), bad)


def test_magic_lines_may_end_in_a_comment() -> None:
    """``%ledger log   # the latest runs`` and ``%track_all on  # ...`` as the README shows
    them: the comment is not an argument; a quoted # is kept."""
    assert parse(ledger_parser(), "log -n 3   # the latest runs, inline").n == 3
    assert parse(track_all_parser(), "on   # every following cell is a run").state == "on"
    ns = parse(track_parser(), "train -m 'fix #3'  # a comment")
    assert (ns.name, ns.message) == ("train", "fix #3")
    ns = parse(track_parser(), "-m fix#3 train --tag issue=#12 --tag q=\\#x  #note")
    assert (ns.name, ns.message, ns.tags) == ("train", "fix#3", {"issue": "#12", "q": "#x"})
    assert parse(ledger_parser(), "#all of it a comment").command is None
