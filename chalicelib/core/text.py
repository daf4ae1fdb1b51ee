"""Characters that make text act on a terminal or reorder it on screen (pure).

C0 and C1 control characters (ESC starts terminal escape sequences, CR rewrites a line, BEL
rings) and the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069, which can
make ``gpj.exe`` read as ``exe.jpg``) have no place in a name. The schemas refuse them on input;
printers escape them in anything stored before that rule existed.
"""

from __future__ import annotations

import re

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def has_unsafe(text: str) -> bool:
    return UNSAFE.search(text) is not None


def escaped(text: str) -> str:
    """``text`` with each unsafe character written as its escape (``\\x1b``, ``\\u202e``)."""
    return UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
