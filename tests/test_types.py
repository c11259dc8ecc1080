"""Every `type: ignore` in the four checked packages names its error codes and says why (issue 11).

`mypy` (CI) keeps the packages at zero errors with `warn_unused_ignores`; this keeps the silenced ones honest:
`# type: ignore[code]  # the reason`, read from the comments with `tokenize`.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "models", "scheduler")  # what `mypy` checks ([tool.mypy] files)

_IGNORE = re.compile(r"type:\s*ignore")
_HONEST = re.compile(r"#\s*type: ignore\[[a-z][a-z-]*(?:,\s*[a-z][a-z-]*)*\]\s+#\s*(?P<reason>.*)$")
_NOQA = re.compile(r"#?\s*noqa(?::\s*[A-Z0-9, ]+)?\s*$")


def unexplained_ignores(source: str) -> list[tuple[int, str]]:
    """(line, comment) of each `type: ignore` comment without specific codes or without a reason after it."""
    found: list[tuple[int, str]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT or not _IGNORE.search(token.string):
            continue
        match = _HONEST.match(token.string)
        reason = _NOQA.sub("", match.group("reason")).strip(" #") if match else ""
        if len(reason.split()) < 2:  # a reason is a few words, not a lone "noqa" or a code
            found.append((token.start[0], token.string))
    return found


def test_every_type_ignore_has_codes_and_a_reason() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, comment in unexplained_ignores(path.read_text(encoding="utf-8"))
    ]
    assert not found, "type: ignore without a code and a reason (`# type: ignore[code]  # why`):\n" + "\n".join(found)


def test_the_check_tells_honest_ignores_from_bare_ones() -> None:
    source = (
        "a = 1  # type: ignore\n"
        "b = 2  # type: ignore[arg-type]\n"
        "c = 3  # type: ignore[arg-type]  # noqa: E501\n"
        "d = 4  # type: ignore[attr-defined]  # private: the stubs omit it\n"
        "e = 5  # type: ignore[attr-defined, arg-type]  # the SDK is untyped  # noqa: E712\n"
        "f = '# type: ignore'  # a string is not a comment\n"
    )
    assert [line for line, _ in unexplained_ignores(source)] == [1, 2, 3]
