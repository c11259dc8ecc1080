"""Parse time per message: 10,000 messages drawn from the plain-words corpus, median and p99 (target < 2 ms).

Run: python bench/parse_speed.py [--messages 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.engine import vocabulary_of  # noqa: E402
from handlers.parser import parse_message  # noqa: E402
from tests.handlers.corpus.plain_messages import CORPUS, TODAY  # noqa: E402
from tests.school import make_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    vocabulary = vocabulary_of(make_config())
    today = date.fromisoformat(TODAY)
    texts = [text for _, text, _ in CORPUS]
    drawn = random.Random(args.seed).choices(texts, k=args.messages)
    parse_message(texts[0], today=today, vocabulary=vocabulary)  # load OpenCC and compile patterns first

    times_ms: list[float] = []
    for text in drawn:
        started = time.perf_counter()
        parse_message(text, today=today, vocabulary=vocabulary)
        times_ms.append((time.perf_counter() - started) * 1000)
    times_ms.sort()
    p99 = times_ms[min(len(times_ms) - 1, int(len(times_ms) * 0.99))]
    print(f"{len(times_ms)} messages from {len(texts)} distinct: median {statistics.median(times_ms):.3f} ms, "
          f"p99 {p99:.3f} ms, max {times_ms[-1]:.3f} ms, total {sum(times_ms) / 1000:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
