"""Where a selected file came from, so that the chain can climb above it.

A Debian location is usually ``.../dists/<suite>/main/installer-amd64/``
while the signed ``InRelease`` lies two directories higher.  A
:class:`~xenpvnetboot.transports.Tree` cannot leave its root (on purpose:
``..`` is refused everywhere), and its ``url()`` is redacted (no ftp
password), so a tree cannot be reopened from what it says.  The chain climbs
the parsed :class:`~xenpvnetboot.location.Location` instead
(:meth:`Location.parent`, which keeps credentials, port and NFS options) and
opens the result with the caller's ``open_location``: the same transport,
options, CA and address policy as the location itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple
from urllib.parse import unquote

from ..location import Location
from ..transports import Tree


def location_parts(location: Location) -> Tuple[str, ...]:
    """The decoded directory names of a location's path, root first."""
    parts = [part for part in location.path.split("/") if part and part != "."]
    return tuple(unquote(part) if location.is_url else part for part in parts)


@dataclass(frozen=True)
class Origin:
    """A tree, the location it was opened from, and how to open locations like it."""

    location: Location
    tree: Tree
    open_location: Callable[[Location], Tree]

    @property
    def parts(self) -> Tuple[str, ...]:
        return location_parts(self.location)

    def ancestor(self, levels: int) -> Tuple[Tree, bool]:
        """The tree *levels* directories above, and whether the caller must close it."""
        if levels == 0:
            return self.tree, False
        if levels > len(self.parts):
            raise ValueError(f"{self.location} has fewer than {levels} directories")
        location = self.location
        for _ in range(levels):
            location = location.parent()
        return self.open_location(location), True


__all__ = ["Origin", "location_parts"]
