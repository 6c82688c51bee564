"""Locations: parsed once (:mod:`.parse`, :mod:`.model`), then opened (:mod:`.open`)."""

from ..errors import NotFound
from .model import FileSpec, Kind, Location, redact_text
from .open import (modules_for, open_local, open_location, open_remote_image, preload,
                   preopen_disk, resolve_spec)
from .parse import (MAX_SPEC_LENGTH, check_spec, file_url_path, is_remote_spec, parse_file_spec,
                    parse_location, split_spec, url_scheme)

__all__ = [
    "FileSpec", "Kind", "Location", "MAX_SPEC_LENGTH", "NotFound", "check_spec",
    "file_url_path", "is_remote_spec", "modules_for", "open_local", "open_location",
    "open_remote_image", "parse_file_spec", "parse_location", "preload", "preopen_disk",
    "redact_text", "resolve_spec", "split_spec", "url_scheme",
]
