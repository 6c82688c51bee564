"""Joining a boot menu's command line with the user's (libxl's ``extra``).

Its own small module because the root parent joins the two after every boot
with a menu, and must not load the menu parsers to do so.
"""

from __future__ import annotations


def join_args(menu: str, user: str) -> str:
    """The menu's arguments, then the user's: last, but before a ``--`` separator.

    When both have the same separator (``---``: what follows is copied to
    the installed system; ``--``: what follows is init's), the two heads and
    the two tails are joined around one separator instead of repeating it.
    """
    words, given = menu.split(), user.split()
    if not given:
        return " ".join(words)
    for separator in ("---", "--"):
        if separator in words and separator in given:
            at, mine = words.index(separator), given.index(separator)
            return " ".join(words[:at] + given[:mine] + [separator]
                            + words[at + 1:] + given[mine + 1:])
    at = words.index("--") if "--" in words else len(words)
    return " ".join(words[:at] + given + words[at:])


__all__ = ["join_args"]
