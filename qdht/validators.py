"""attrs validators shared by every configuration class (``Config`` and the per-layer ones).

Each raises :class:`qdht.errors.ConfigError` naming the field and the value
it refused.  Like :mod:`qdht.errors`, any layer may import this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from qdht.errors import ConfigError

__all__ = [
    "boolean",
    "fraction",
    "instance_of",
    "non_negative",
    "non_negative_int",
    "number",
    "optional",
    "positive",
    "positive_int",
    "unit_interval",
]

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or value < 1:
        raise ConfigError(f"{attribute.name} must be a positive integer, got {value!r}")


def non_negative_int(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or value < 0:
        raise ConfigError(f"{attribute.name} must be a non-negative integer, got {value!r}")


def positive(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """A number > 0 (int or float, not bool, not NaN)."""
    if not _is_number(value) or not value > 0:  # type: ignore[operator]
        raise ConfigError(f"{attribute.name} must be a positive number, got {value!r}")


def non_negative(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_number(value) or not value >= 0:  # type: ignore[operator]
        raise ConfigError(f"{attribute.name} must be a non-negative number, got {value!r}")


def number(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """Any int or float but NaN (and not a bool)."""
    if not _is_number(value) or math.isnan(value):  # type: ignore[arg-type]
        raise ConfigError(f"{attribute.name} must be a number, got {value!r}")


def unit_interval(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """A number in [0, 1]."""
    if not _is_number(value) or not 0 <= value <= 1:  # type: ignore[operator]
        raise ConfigError(f"{attribute.name} must be a number in [0, 1], got {value!r}")


def fraction(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    """A number in [0, 1)."""
    if not _is_number(value) or not 0 <= value < 1:  # type: ignore[operator]
        raise ConfigError(f"{attribute.name} must be a number in [0, 1), got {value!r}")


def boolean(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not bool:
        raise ConfigError(f"{attribute.name} must be True or False, got {value!r}")


def instance_of(cls: type) -> Validator:
    """The value must be a ``cls``."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, cls):
            raise ConfigError(f"{attribute.name} must be a {cls.__name__}, got {value!r}")

    return check


def optional(validator: Validator) -> Validator:
    """``validator``, or None."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return check
