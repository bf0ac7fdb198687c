"""Keep secrets in the process: redact values whose names look secret."""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_argv",
    "redact_mapping",
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


def redact_mapping(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` with secret-looking keys redacted, in nested mappings too, and
    in mappings inside lists and tuples (``{"servers": [{"token": ...}]}``)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        out[k] = REDACTED if is_secret_name(str(k)) else redact_value(v)
    return out


def redact_value(v: Any) -> Any:
    """``v`` with secret-looking keys redacted in every mapping it holds (lists, tuples and
    dicts are walked; anything else is returned as it is)."""
    if isinstance(v, dict):
        return redact_mapping(v)
    if type(v) in (list, tuple) and any(isinstance(x, (dict, list, tuple)) for x in v):
        items = [redact_value(x) for x in v]
        return items if type(v) is list else tuple(items)
    return v


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
    """``https://user:token@host/x?access_token=t`` -> ``https://host/x?access_token=<redacted>``:
    the user and password go, and so does the value of a query parameter with a secret
    name; other strings are unchanged."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = parts.hostname or ""
        if port:
            netloc = f"{netloc}:{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(k) for k, _v in pairs):
            query = urlencode(
                [(k, REDACTED if is_secret_name(k) else v) for k, v in pairs], safe="<>"
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
