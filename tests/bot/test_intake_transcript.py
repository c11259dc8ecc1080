"""docs/intake-transcript.md is what the real engine answers today (regenerate it with scripts/intake_transcript.py)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.conftest import REPO_ROOT


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("intake_transcript", REPO_ROOT / "scripts" / "intake_transcript.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_transcript_in_docs_is_the_engines_real_replies() -> None:
    script = _script()
    transcript = script.run()
    assert len(transcript) == 10
    assert (REPO_ROOT / "docs" / "intake-transcript.md").read_text(encoding="utf-8") == script.markdown(transcript), (
        "docs/intake-transcript.md is out of date: run scripts/intake_transcript.py"
    )
    replies = [reply for _, _, reply in transcript]
    assert sum("还没有登记" in reply for reply in replies) == 5  # asked, then settled by the next message
    assert [reply.split("\n", 1)[0] for reply in replies[1::2]][:4] == [
        "已登记隐患 #1（一般·用电），按您的原话理解如下",
        "已登记隐患 #2（一般·消防），按您的原话理解如下",
        "已补充到隐患 #2（图书馆二楼 灭火器过期）：记下您也上报了，没有新编号。",
        "已登记隐患 #3（一般·消防），按您的原话理解如下",
    ]
