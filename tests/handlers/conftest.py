"""Handler tests talk to the bot as a chat with a small school (see tests/school.py)."""

from tests.school import chat, engine, two_schools  # noqa: F401  (fixtures)
