"""Catalog segments: a sealed day's run records compacted into one object.

A catalog that syncs a store from scratch would read one entry (or two) per
run.  Once a day is sealed (over, and every run in it ended: see
``catalog.sync``), the process that seals it first writes a *segment*::

    segments/<yyyy>/<mm>/<dd>/<digest>.json.gz

gzip of canonical JSON: the day, the digest algorithm, ``entries`` (every
entry key it was built from -> the digest of that entry's bytes),
``records`` (run id -> the record merged from those entries, exactly what a
reader merging them gets) and ``listing`` (every run name of the day folder
when it was built: a run it left out, still going or damaged, is named there
too).  The name is the digest of the JSON, so a segment is written
create-only and never changes; two processes sealing the same day from the
same entries write the same name, and the second finds it there.

A segment is derived data, never the truth:

- a first sync *trusts* a day's segments instead of listing the day folder
  when nothing can have landed there since they were built: every segment of
  the day has a ``listing`` and was written when the day was 2 days old by the
  store's own clock (a catalog whose clock runs ahead may seal a day early),
  and no late marker names the day (a writer creates one *before* its first
  entry into a day catalogs may have sealed: see ``late``).  It takes the
  records of the segments, reads the runs of the listing they lack from their
  entries, and leaves out every run a gc log names;
- otherwise a reader takes a run's record from a segment only when the entry the
  segment was built from is in its own listing of the day (same key: a short
  run's ``<id>.json`` or a run folder's ``end.json``); every other name of
  the listing (a late run, a run the segment left out) is read from its
  entries, and a run the segment covers but the listing lacks (deleted by
  ``gc``) is not taken;
- a segment whose bytes do not match its name, or that does not parse, is
  ignored (the day is read entry by entry);
- ``verify`` rebuilds every segment's records from the entries it covers and
  compares digests and records (``check``);
- ``gc`` that deletes runs of a day first writes that day's segment afresh
  with no record of them and deletes the old one (``rewrite_day``), so no
  record of a deleted run stays behind, even when the gc is cut short.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import canonical, run_entries
from ..errors import DamagedEntryError
from ..ids import run_id_of_entry
from .chain import entry_digest
from .layout import SEGMENTS, segment_key

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "SUFFIX",
    "Segment",
    "build",
    "check",
    "day_entry_keys",
    "decode",
    "encode",
    "find",
    "find_written",
    "read_day",
    "read_entries",
    "rewrite_day",
    "write",
]

FORMAT = 1
#: how a segment's name ends (after the digest of its JSON)
SUFFIX = ".json.gz"


class Segment:
    """One day's run records and the entries (key -> digest) they were merged from."""

    def __init__(
        self,
        day: str,
        entries: dict[str, str],
        records: dict[str, dict[str, Any]],
        texts: dict[str, str] | None = None,
        listing: list[str] | None = None,
    ) -> None:
        self.day = day
        self.entries = entries
        self.records = records
        #: every run name of the day folder it was built from (None: a segment written
        #: before segments named them, which no sync trusts without a listing)
        self.listing = listing
        #: run id -> its record's canonical JSON, as the segment's bytes hold it (read back)
        self.texts = texts or {}

    def text_of(self, run_id: str) -> str | None:
        """A record's canonical JSON as read from the segment (None: encode it)."""
        return self.texts.get(run_id)

    def record_for(self, day_name: str) -> dict[str, Any] | None:
        """The record of the run a name in the day's folder stands for, when this segment
        was built from that very entry (a short run's ``<id>.json``, a folder's end)."""
        rid = run_id_of_entry(day_name)
        if rid is None:
            return None
        key = f"runs/{self.day}/{day_name}" + ("" if day_name.endswith(".json") else "/end.json")
        if key not in self.entries:
            return None
        return self.records.get(rid)


def day_entry_keys(day: str, names: Iterable[str]) -> list[str]:
    """The entry keys a segment of ``day`` is built from, for the names of its folder: each
    short run's ``<id>.json``, each run folder's ``start.json`` and ``end.json``."""
    keys = []
    for n in names:
        if run_id_of_entry(n) is None:
            continue
        if n.endswith(".json"):
            keys.append(f"runs/{day}/{n}")
        else:
            keys += [f"runs/{day}/{n}/start.json", f"runs/{day}/{n}/end.json"]
    return keys


def build(day: str, got: Mapping[str, bytes | None], algorithm: str) -> Segment:
    """A segment of ``day`` from its entries' bytes (``key -> bytes``, None for an entry
    not there): every run that ended (a short run's one entry, or a folder with an end
    entry) and is not damaged.  ``got`` must hold the keys ``day_entry_keys`` gives for
    the whole listing of the day folder: its names are the segment's ``listing``."""
    prefix = f"runs/{day}/"
    runs: dict[str, dict[str, tuple[str, bytes]]] = {}
    listing: set[str] = set()
    for key, raw in got.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        name = rest.partition("/")[0]
        if run_id_of_entry(name) is not None:
            listing.add(name)
        if raw is None:
            continue
        if "/" in rest:
            folder, _, entry = rest.partition("/")
            rid = run_id_of_entry(folder)
            part = entry[: -len(".json")]
        else:
            rid, part = run_id_of_entry(rest), "whole"
        if rid is not None and part in ("start", "end", "whole"):
            runs.setdefault(rid, {})[part] = (key, raw)
    entries: dict[str, str] = {}
    records: dict[str, dict[str, Any]] = {}
    for rid in sorted(runs):
        parts = runs[rid]
        whole = "whole" in parts
        end = parts.get("whole") or parts.get("end")
        if end is None:
            continue  # no end entry: still going, or its process died (read from entries)
        start = None if whole else parts.get("start")
        try:
            rec = run_entries.merge(rid, start, end, whole=whole)
        except DamagedEntryError:
            continue
        if rec is None or rec.get("status", "running") == "running":
            continue
        records[rid] = rec
        for key, raw in (end,) if start is None else (start, end):
            entries[key] = entry_digest(raw, algorithm)
    return Segment(day, entries, records, listing=sorted(listing))


def encode(seg: Segment, algorithm: str) -> tuple[str, bytes]:
    """The key and the bytes of a segment (its name: the digest of its JSON)."""
    doc = {
        "format": FORMAT,
        "day": seg.day,
        "algorithm": algorithm,
        "entries": seg.entries,
        "records": seg.records,
    }
    if seg.listing is not None:
        doc["listing"] = seg.listing
    raw = canonical.dumps(doc)
    name = entry_digest(raw, algorithm).partition(":")[2]
    return segment_key(seg.day, name + SUFFIX), gzip.compress(raw, compresslevel=6, mtime=0)


def decode(key: str, data: bytes, algorithm: str) -> Segment:
    """A segment read back; ``ValueError`` when it is damaged, is not a segment of the day
    its key names, or its bytes do not match its name."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise ValueError(f"{key}: not gzip ({e})") from None
    name = key.rsplit("/", 1)[-1]
    if entry_digest(raw, algorithm).partition(":")[2] + SUFFIX != name:
        raise ValueError(f"{key}: its content does not match its name")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{key}: not UTF-8") from None
    texts: dict[str, str] = {}
    try:
        doc: Any = _scan(text, texts)
    except (ValueError, IndexError, TypeError):  # not canonical JSON: parse it plainly
        texts = {}
        try:
            doc = canonical.loads(raw)
        except ValueError:
            raise ValueError(f"{key}: not JSON") from None
    day = "/".join(key.split("/")[1:4])
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("day") != day:
        raise ValueError(f"{key}: not a format-{FORMAT} segment of {day}")
    entries, records = doc.get("entries"), doc.get("records")
    if not isinstance(entries, dict) or not isinstance(records, dict):
        raise ValueError(f"{key}: no entries or records")
    listing = doc.get("listing")
    if not (listing is None or _strings(listing)):
        raise ValueError(f"{key}: its listing is not a list of names")
    return Segment(day, entries, records, texts, listing=listing)


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_decoder = json.JSONDecoder()
_scan_string: Any = getattr(json.decoder, "scanstring")  # noqa: B009 - untyped in typeshed


def _key(text: str, i: int) -> tuple[str, int]:
    """A compact JSON object's key at ``i`` (its opening quote) and where its value starts."""
    if text[i] != '"':
        raise ValueError("not a key")
    key, i = _scan_string(text, i + 1)
    if text[i] != ":":
        raise ValueError("no colon")
    return str(key), i + 1


def _scan(text: str, texts: dict[str, str]) -> dict[str, Any]:
    """Parse a segment's compact JSON (as ``canonical`` writes it) into the document, and
    put each record's own text into ``texts`` (run id -> the slice of ``text`` it was
    parsed from): the catalog stores that text as is instead of encoding it again.
    ``ValueError`` on anything else (whitespace, trailing bytes): parse it plainly."""
    doc: dict[str, Any] = {}
    if text[0] != "{":
        raise ValueError("not an object")
    i = 1
    while text[i] != "}":
        name, i = _key(text, i)
        if name == "records" and text[i] == "{":
            records: dict[str, Any] = {}
            i += 1
            while text[i] != "}":
                rid, i = _key(text, i)
                records[rid], end = _decoder.raw_decode(text, i)
                texts[rid] = text[i:end]
                i = end + (text[end] == ",")
            doc[name] = records
            i += 1
        else:
            doc[name], i = _decoder.raw_decode(text, i)
        if text[i] == ",":
            i += 1
        elif text[i] != "}":
            raise ValueError("no comma")
    if i + 1 != len(text):
        raise ValueError("trailing bytes")
    return doc


def write(store: Store, seg: Segment, *, empty: bool = False) -> str | None:
    """Write a segment create-only (an identical one there already is success); its key,
    or None when it covers no run (unless ``empty``: a day gc is emptying)."""
    if not seg.records and not (empty and seg.listing is not None):
        return None
    key, data = encode(seg, store.algorithm)
    store.create_entry(key, data)
    return key


def find(store: Store) -> dict[str, list[str]]:
    """Every segment of the store by day (``yyyy/mm/dd`` -> keys): one listing."""
    return {day: list(keys) for day, keys in find_written(store).items()}


def find_written(store: Store) -> dict[str, dict[str, float | None]]:
    """Every segment of the store by day (``yyyy/mm/dd`` -> key -> when the store says it
    was written, None when it cannot say): one listing."""
    out: dict[str, dict[str, float | None]] = {}
    for key, at, _size in store.backend.list_details(SEGMENTS):
        parts = key.split("/")
        if len(parts) == 5 and parts[4].endswith(SUFFIX):
            out.setdefault("/".join(parts[1:4]), {})[key] = at
    return out


def read_day(store: Store, keys: list[str]) -> list[Segment]:
    """The sound segments among ``keys`` (one day's); a damaged one is left out."""
    got = store.backend.read_many(keys)
    out = []
    for key in keys:
        data = got.get(key)
        if data is None:
            continue
        try:
            out.append(decode(key, data, store.algorithm))
        except ValueError:
            continue
    return out


def read_entries(store: Store, day: str) -> dict[str, bytes | None]:
    """Every run entry of ``day`` a segment is built from, read from the store (an entry
    not there reads as None)."""
    names = store.backend.list_dir(f"runs/{day}")
    return store.backend.read_many(day_entry_keys(day, names))


def rewrite_day(store: Store, day: str, old: list[str], *, without: Iterable[str]) -> str | None:
    """Before gc deletes the runs ``without`` of ``day``: write its segment afresh with no
    record of them (their names stay in its listing: a first sync trusting it reads them
    from their entries unless a gc log names them, so a gc cut short before it deleted
    or logged them hides nothing that is still there), then delete the ``old`` segments
    (the new one is complete before they go)."""
    drop = set(without)
    got = {
        k: None if run_id_of_entry(k.split("/")[4]) in drop else v
        for k, v in read_entries(store, day).items()
    }
    # even with no run left: a first sync trusting it must not show the runs about to go
    key = write(store, build(day, got, store.algorithm), empty=True)
    for k in old:
        if k != key:
            store.backend.delete(k)
    return key


def check(
    seg: Segment,
    got: Mapping[str, bytes | None],
    algorithm: str,
    *,
    folder: Iterable[str] = (),
) -> list[str]:
    """What is wrong with a segment against the entries it covers (``got``: their bytes):
    an entry whose digest differs, a record that differs from the one its entries give,
    a run name of the day ``folder`` (its run names, when no late marker names the day)
    that its listing lacks: a first sync trusting the segment would not see that run.
    Entries no longer there (runs gc deleted) are not wrong: such records are never
    read."""
    problems = []
    if seg.listing is not None:
        listed = set(seg.listing)
        problems += [
            f"run {run_id_of_entry(n)} is in its day folder but not in the segment's listing, "
            "and no late marker names the day: a first sync trusting the segment would not "
            "show it; delete the segment (the next first sync writes it afresh)"
            for n in sorted(set(folder) - listed)
            if run_id_of_entry(n) is not None
        ]
    present = {k: raw for k in seg.entries if (raw := got.get(k)) is not None}
    for key, raw in present.items():
        if entry_digest(raw, algorithm) != seg.entries[key]:
            problems.append(f"it was built from another {key}")
    rebuilt = build(seg.day, present, algorithm)
    for rid, rec in rebuilt.records.items():
        if rid in seg.records and canonical.dumps(seg.records[rid]) != canonical.dumps(rec):
            problems.append(f"its record of run {rid} differs from the run's entries")
    return problems
