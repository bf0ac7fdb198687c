"""Keep secrets in the process: redact values whose names look secret."""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_argv",
    "redact_mapping",
    "redact_text",
    "redact_value",
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
    """Redact ``--password=x``, ``--token x`` and ``-p`` style secrets in a command line."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
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
