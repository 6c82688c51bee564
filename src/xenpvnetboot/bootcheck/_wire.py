"""Reports as JSON values, so a verdict can be kept with a cached file.

A report holds the facts about one file's bytes, whatever the guest (the
guest type and architecture are applied later, by ``check_boot_files``), so
the report of a file whose content hash is known can be reused by every
later boot of the same bytes instead of decompressing them again.  The
file's path and name are not kept: they are the current boot's.

Decoding checks every field against its type and gives None for anything
else (a record of an older version, a damaged file): the file is then
simply inspected again.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Dict, Optional, Type, TypeVar, Union

from ._reports import KernelReport, RamdiskMember, RamdiskReport

#: Changes whenever a report's fields or their meaning change.
WIRE_VERSION = 1
_LOCAL = ("path", "name")
R = TypeVar("R", KernelReport, RamdiskReport)


class _Invalid(Exception):
    pass


def report_to_wire(report: Union[KernelReport, RamdiskReport]) -> Dict[str, Any]:
    """The facts of *report* as a JSON-able dict (see the module docstring)."""
    facts = {item.name: _encode(getattr(report, item.name))
             for item in dataclasses.fields(report) if item.name not in _LOCAL}
    return {"wire": WIRE_VERSION, "kind": type(report).__name__, "facts": facts}


def report_from_wire(wire: object, kind: Type[R], path: Union[str, int], name: str) -> Optional[R]:
    """The *kind* report *wire* describes, for the file at *path* called *name*; None if invalid."""
    if not isinstance(wire, dict) or wire.get("wire") != WIRE_VERSION \
            or wire.get("kind") != kind.__name__ or not isinstance(wire.get("facts"), dict):
        return None
    facts = wire["facts"]
    hints = typing.get_type_hints(kind)
    values: Dict[str, Any] = {"path": path, "name": name}
    try:
        for item in dataclasses.fields(kind):
            if item.name in _LOCAL:
                continue
            if item.name not in facts:
                raise _Invalid(item.name)
            values[item.name] = _decode(facts[item.name], hints[item.name])
    except _Invalid:
        return None
    return kind(**values)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(key): _encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if dataclasses.is_dataclass(value):
        return {item.name: _encode(getattr(value, item.name)) for item in dataclasses.fields(value)}
    return value


def _decode(value: Any, hint: Any) -> Any:
    """*value* as the type *hint* says (the types reports use), or :class:`_Invalid`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:  # Optional[X]
        if value is None:
            return None
        return _decode(value, next(arg for arg in args if arg is not type(None)))
    if origin is list and isinstance(value, list):
        return [_decode(item, args[0]) for item in value]
    if origin is dict and isinstance(value, dict):
        return {_decode_key(key, args[0]): _decode(item, args[1]) for key, item in value.items()}
    if hint is bytes and isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise _Invalid("bytes") from None
    if hint is RamdiskMember and isinstance(value, dict):
        member_hints = typing.get_type_hints(RamdiskMember)
        fields = [item.name for item in dataclasses.fields(RamdiskMember)]
        if sorted(value) != sorted(fields):
            raise _Invalid("member")
        return RamdiskMember(**{key: _decode(value[key], member_hints[key]) for key in fields})
    if hint is bool and isinstance(value, bool):
        return value
    if hint in (int, str) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    raise _Invalid(str(hint))


def _decode_key(key: str, hint: Any) -> Any:
    if hint is int:
        if not key.isdigit():
            raise _Invalid("key")
        return int(key)
    return key


__all__ = ["WIRE_VERSION", "report_from_wire", "report_to_wire"]
