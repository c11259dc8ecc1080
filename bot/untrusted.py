"""Reading what arrives from the network (callback bodies, headers, link parts) without letting it raise.

Malformed input must end in a 4xx answer, not in an exception that becomes a 500: `json.loads` raises
RecursionError on deeply nested arrays, `int()` accepts non-ASCII digits ('١٢', and '²' passes
`isdigit()` but not `int()`) and refuses more than 4300 digits, and `hmac.compare_digest` raises
TypeError on non-ASCII strings.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

# Real callbacks nest four or five levels deep (a WeCom mixed message, a DingTalk richText); anything far
# deeper is not a platform's message, and recursive code further on (str() of a list) could overflow on it.
MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 18  # below 2**63: fits a BIGINT column and any timestamp in milliseconds


class MalformedPayload(ValueError):
    """Input that is not what the sender promised: answer 400, never retry it."""


def load_json(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON, or raise MalformedPayload when it is broken, not UTF-8 or nested too deeply."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise MalformedPayload("not valid JSON") from None
    if nesting_exceeds(value, max_depth):
        raise MalformedPayload(f"JSON nested deeper than {max_depth} levels")
    # JSON may spell half of a surrogate pair (`"\ud800"`): valid JSON, but no text a database can store.
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    if _SURROGATE_ESCAPE.search(text) and has_lone_surrogate(value):
        raise MalformedPayload("JSON holds a lone surrogate")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string (or key) in `value` holds a surrogate code point that UTF-8 cannot encode."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether lists/dicts in `value` nest deeper than `limit` (walked with a stack, not recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def ascii_int(text: str | None, *, max_digits: int = MAX_INT_DIGITS) -> int | None:
    """The number spelled by ASCII digits only (no sign, no spaces), or None."""
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def same_secret(expected: str, given: str) -> bool:
    """Constant-time comparison of a signature; False, not a TypeError, when `given` is not ASCII."""
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass"))
