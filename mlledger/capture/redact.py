"""Keep secrets in the process: redact values whose names look secret."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "environ_secrets",
    "is_secret_name",
    "redact_argv",
    "redact_mapping",
    "redact_pairs",
    "redact_text",
    "redact_value",
    "redacted_repr",
    "scrub",
    "secret_attributes",
    "strip_url_credentials",
]

REDACTED = "<redacted>"

#: anywhere in a name, in any case: unambiguous
_SECRET_ANYWHERE = re.compile(r"PASSWORD|PASSWD|SECRET|CREDENTIAL|PRIVATE", re.IGNORECASE)
#: words of a name (split at non-alphanumerics and camelCase humps)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True when ``name`` looks like it holds a secret (``api_key``, ``GH_TOKEN``, ``sshKey``…).

    PASSWORD, PASSWD, SECRET, CREDENTIAL and PRIVATE count anywhere; TOKEN,
    KEY and AUTH count at the end of a word (``apikey``, ``accessToken``,
    ``oauth``) or as ``authorization``, so ``tokenizer``, ``max_tokens``,
    ``num_keypoints`` and ``author`` stay visible.
    """
    if _SECRET_ANYWHERE.search(name):
        return True
    for word in _WORDS.findall(name):
        w = word.lower()
        if w.endswith(("token", "key", "auth")) or w.startswith("authoriz"):
            return True
    return False


def redact_mapping(values: dict[str, Any], *, records: bool = False) -> dict[str, Any]:
    """A copy of ``values`` with secret-looking keys redacted, in nested mappings too, and
    in mappings inside lists and tuples (``{"servers": [{"password": ...}]}``).

    Mappings inside lists are mostly data records (``{"token": "Hello", "logprob": -0.1}``,
    ``{"key": "lr", "value": 0.1}``): there (``records``), a bare ``key``, ``token`` or
    ``auth`` hides only a value that looks like a credential; compound names
    (``api_key``, ``access_token``) and PASSWORD/SECRET… hide any value.
    """
    out: dict[str, Any] = {}
    for k, v in values.items():
        name = str(k)
        secret = is_secret_name(name)
        if secret and records and name.strip("_-").lower() in _AMBIGUOUS:
            secret = _credential_like(v)
        out[k] = REDACTED if secret else redact_value(v, records=records)
    return out


#: secret as part of a compound name (api_key, access_token), but data alone in a record
_AMBIGUOUS = frozenset({"key", "token", "auth"})


def _credential_like(v: Any) -> bool:
    """A value that could be a credential: a string of 8 or more characters, no spaces."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return isinstance(v, str) and len(v) >= 8 and not any(c.isspace() for c in v)


def redact_value(v: Any, *, records: bool = False) -> Any:
    """``v`` with secret-looking keys redacted in every mapping it holds, and credentials
    stripped from every URL string (``postgres://u:pw@h/db`` -> ``postgres://h/db``);
    lists, tuples and dicts are walked, anything else is returned as it is."""
    if isinstance(v, str):
        return redact_text(v)
    if isinstance(v, dict):
        return redact_mapping(v, records=records)
    if type(v) in (list, tuple) and any(
        isinstance(x, (dict, list, tuple)) or (isinstance(x, str) and "://" in x) for x in v
    ):
        items = [redact_value(x, records=True) for x in v]
        return items if type(v) is list else tuple(items)
    return v


#: a URL inside text: a scheme, "://", then everything up to a space, a quote or a bracket
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s<>\"'()\[\]{}]+")


def redact_text(s: str) -> str:
    """``s`` with the credentials of each URL in it stripped (``postgres://u:pw@h/db`` ->
    ``postgres://h/db``, secret query values hidden); every other character stays as it
    was, so a paragraph that mentions a URL is only changed inside that URL."""
    if "://" not in s:
        return s
    return _URL_IN_TEXT.sub(_strip_match, s)


def _strip_match(m: re.Match[str]) -> str:
    url = m.group()
    # only a user part, a query or a fragment can hold a secret
    if "@" not in url and "?" not in url and "#" not in url:
        return url
    return strip_url_credentials(url)


def redact_argv(argv: list[str]) -> list[str]:
    """Redact ``--password=x``, ``--token x`` and ``-p`` style secrets in a command line.

    ``-p`` is the password option of mysql, sshpass, redis-cli and more, and the
    port option of ssh: the value after ``-p`` (or attached, ``-pVALUE``) is
    hidden unless it is a number.
    """
    out: list[str] = []
    hide_next = False
    for i, arg in enumerate(argv):
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg == "-p":
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            out.append(arg)
            hide_next = bool(nxt) and not nxt.startswith("-") and not nxt.isdigit()
            continue
        if arg.startswith("-p") and len(arg) > 2 and not arg[2:].isdigit() and arg[1] != "-":
            out.append(f"-p{REDACTED}")
            continue
        if arg.startswith("-") and len(arg) > 1:
            name, eq, _value = arg.lstrip("-").partition("=")
            if is_secret_name(name):
                if eq:
                    out.append(f"{arg.split('=', 1)[0]}={REDACTED}")
                else:
                    out.append(arg)
                    hide_next = True
                continue
        elif "=" in arg:
            name, _, _value = arg.partition("=")
            if is_secret_name(name):
                out.append(f"{name}={REDACTED}")
                continue
        if "://" not in arg:
            out.append(arg)
        elif "=" in arg.split("://", 1)[0]:  # --opt=URL or NAME=URL: clean the URL part
            head, _, url = arg.partition("=")
            out.append(f"{head}={strip_url_credentials(url)}")
        else:
            out.append(strip_url_credentials(arg))
    return out


def strip_url_credentials(url: str) -> str:
    """``https://user:pw@host/x?access_token=t`` -> ``https://host/x?access_token=<redacted>``.

    The user and password go (also from a multi-host netloc, ``h1:5432,h2:5432``), and
    so do the values of secret-named query or fragment parameters (``access_token``,
    ``X-Amz-Signature``, an Azure SAS ``sig``); every other byte stays as it was.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    query = _redact_params(parts.query)
    fragment = _redact_params(parts.fragment)
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_params(text: str) -> str:
    """``a=1&token=x`` -> ``a=1&token=<redacted>``, the rest byte for byte."""
    if "=" not in text:
        return text
    out = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        key = unquote_plus(name)
        # an empty value hides nothing, and one already redacted stays as it is (so a
        # redacted value redacted again is the same value, with the same digest)
        secret = (
            eq and value and value != REDACTED and (is_secret_name(key) or _SIGNATURE.search(key))
        )
        out.append(f"{name}={REDACTED}" if secret else item)
    return "&".join(out)


#: signed-URL parameters: as good as a credential until they expire
_SIGNATURE = re.compile(r"signature$|^sig$", re.IGNORECASE)


# -- text: messages, exception messages, tracebacks, reprs ------------------------------------

#: the head of ``name=value``, ``name: value``, ``'name': 'value'``, ``"name"="value"``: a
#: name, an optional closing quote, then ``=`` or ``:``
_PAIR_HEAD = re.compile(r"""(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)(?P<q>['"]?)\s*[:=]\s*""")
#: the value after it: quoted, or a bare run up to a space, a comma, a bracket or a quote
_PAIR_VALUE = re.compile(r"""'[^'\n]*'|"[^"\n]*"|[^\s,;)}\]&'"]+""")

#: a known secret value shorter than this is not masked in text (it would hit words)
MIN_MASKED = 6


def redact_pairs(text: str) -> str:
    """``text`` with the value of every ``NAME=value`` / ``NAME: value`` pair whose NAME looks
    secret hidden (quotes kept): ``password='x'`` -> ``password='<redacted>'``.  A bare
    ``key``, ``token`` or ``auth`` hides only a credential-like value (``key=len`` stays)."""
    if "=" not in text and ":" not in text:
        return text
    out: list[str] = []
    pos = 0
    for m in _PAIR_HEAD.finditer(text):
        if m.start() < pos or not is_secret_name(m.group("name").rsplit(".", 1)[-1]):
            continue
        v = _PAIR_VALUE.match(text, m.end())
        if v is None:
            continue
        val = v.group()
        quoted = val[:1] in ("'", '"') and len(val) >= 2
        bare = val[1:-1] if quoted else val
        name = m.group("name").rsplit(".", 1)[-1]
        if REDACTED in bare or bare.startswith("//"):  # done already, or a URL's "://"
            continue
        if name.strip("_-").lower() in _AMBIGUOUS and not _credential_like(bare):
            continue
        quote = val[0] if quoted else ""
        out.append(text[pos : m.end()])
        out.append(f"{quote}{REDACTED}{quote}")
        pos = v.end()
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def scrub(text: str, known: Iterable[str] = ()) -> str:
    """Free text as it may leave the process: URL credentials stripped, secret
    ``NAME=value`` pairs hidden, and every known secret value (``known``: the run's secret
    params, secret environment variables) masked wherever it appears."""
    for secret in sorted({k for k in known if len(k) >= MIN_MASKED}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return redact_pairs(redact_text(text))


def environ_secrets() -> list[str]:
    """Values of this process's environment variables whose names look secret."""
    import os

    return [v for k, v in os.environ.items() if v and is_secret_name(k)]


# -- objects: what a pickle or a repr would carry --------------------------------------------

#: how many objects :func:`secret_attributes` looks at before it stops
_ATTR_BUDGET = 10_000


def secret_attributes(value: Any) -> dict[str, Any]:
    """Secret-named attributes and mapping keys with a value, found in ``value``'s
    ``__dict__``, ``__slots__`` (dataclass and attrs fields live there), and in the objects,
    lists, tuples, sets and dicts those hold, up to ``_ATTR_BUDGET`` objects: ``{name: value}``.

    An empty value (None, "", 0) hides nothing; a bare ``key``/``token``/``auth`` counts only
    with a credential-like value.
    """
    found: dict[str, Any] = {}
    stack: list[Any] = [value]
    seen: set[int] = set()
    budget = _ATTR_BUDGET
    while stack and budget > 0:
        budget -= 1
        v = stack.pop()
        if v is None or isinstance(v, (str, bytes, int, float, bool)) or id(v) in seen:
            continue
        seen.add(id(v))
        for name, x in _members(v):
            if (
                isinstance(name, str)
                and not _empty(x)
                and is_secret_name(name)
                and (name.strip("_-").lower() not in _AMBIGUOUS or _credential_like(x))
            ):
                found.setdefault(name, x)
                continue
            stack.append(x)
    return found


def _empty(x: Any) -> bool:
    """None, or an empty or zero str, bytes or int: nothing to hide (never compares arrays)."""
    return x is None or (isinstance(x, (str, bytes, int)) and not x)


def _members(v: Any) -> list[tuple[Any, Any]]:
    """``(name, value)`` of what ``v`` holds: dict items, attributes, slots; items of a
    list, tuple or set under no name."""
    if isinstance(v, dict):
        return list(v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return [(None, x) for x in v]
    if type(v).__module__ in ("numpy", "pandas", "torch") or isinstance(v, type):
        return []
    out: list[tuple[Any, Any]] = []
    d = getattr(v, "__dict__", None)
    if isinstance(d, dict):
        out.extend(d.items())
    for cls in type(v).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            try:
                out.append((name, getattr(v, name)))
            except Exception:  # an unset slot, a raising descriptor
                continue
    return out


def redacted_repr(value: Any, known: Iterable[str] = (), limit: int = 200) -> str:
    """A repr of ``value`` that carries no secret it holds: an object with secret-named
    attributes is shown as ``Type(name=<redacted>, other=...)`` from its attributes (its
    own ``__repr__`` may print them), every secret value found is masked, and the text is
    scrubbed (:func:`scrub`).  Never raises."""
    secrets = secret_attributes(value)
    masks = [*known, *(str(x) for x in secrets.values() if isinstance(x, (str, bytes, int)))]
    try:
        if secrets and not isinstance(value, (dict, list, tuple)):
            shown = [
                f"{k}={REDACTED if k in secrets else _short_repr(x)}"
                for k, x in _members(value)
                if isinstance(k, str) and not k.startswith("_")
            ]
            text = f"{type(value).__qualname__}({', '.join(shown)})"
        else:
            text = repr(value)
    except Exception:
        return f"<{type(value).__qualname__}>"
    text = scrub(text, masks)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_repr(x: Any) -> str:
    try:
        r = repr(x)
    except Exception:
        return f"<{type(x).__qualname__}>"
    return r if len(r) <= 60 else r[:57] + "..."
