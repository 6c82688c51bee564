"""Untrusted text from an install tree, made safe to show on a console.

Labels come from files any mirror can serve (``.disk/info``, ``content``,
``.treeinfo``); they reach the guest console and the bootloader log, so
control characters (terminal escapes) are replaced and length is bounded.
"""

from __future__ import annotations

LABEL_LIMIT = 100


def printable(text: str, limit: int = LABEL_LIMIT) -> str:
    """*text* on one line, without control characters, at most *limit* characters."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 3].rstrip() + "..."
    return cleaned


def looks_like_html(text: str) -> bool:
    """True for an error page a sloppy server returns with status 200."""
    return text.lstrip()[:1] == "<"
