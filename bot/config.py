"""The config schema, re-exported where the edge has always found it.

The schema lives in models/config.py so the scheduler (and anything below bot/) can read it without
importing bot/; add settings there.
"""

from models.config import *  # noqa: F401,F403  (every public name, as before the move)
