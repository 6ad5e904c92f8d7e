"""Value checks of the sweep config: each returns the checked value or raises ConfigError naming the key path.

Messages read ``config: <key path>: <problem>``, with the allowed values
where there is a closed set (``unknown value 'x'; allowed: a, b``).
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

from codec.errors import VQSimError


class ConfigError(VQSimError, ValueError):
    """A sweep config is invalid; the message names the key and the allowed values."""


def err(path: str, msg: str) -> ConfigError:
    """The ConfigError ``config: <path>: <msg>``."""
    return ConfigError(f"config: {path}: {msg}" if path else f"config: {msg}")


def check_keys(obj: Any, allowed: tuple[str, ...], path: str) -> dict:
    """A section as a dict ({} for null); a non-mapping or an unknown key is an error listing the allowed keys."""
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise err(path, f"must be a mapping with keys {', '.join(allowed)}; got {type(obj).__name__}")
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        where = f"'{path}'" if path else "the top level"
        raise err(path, f"unknown key(s) {', '.join(repr(str(k)) for k in unknown)} in {where}; "
                        f"allowed: {', '.join(allowed)}")
    return dict(obj)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


# A decimal number in exponent notation: YAML 1.2 reads it as a float, PyYAML (YAML 1.1) as a string unless
# the mantissa has a dot and the exponent a sign ("1.0e7", "1e-4", "5E6" are strings, "1.0e+7" a float).
EXPONENT_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def yaml_float(v: Any) -> Any:
    """``v`` as a float if it is a string in exponent notation (YAML 1.1's unread floats), else ``v`` unchanged."""
    return float(v) if isinstance(v, str) and EXPONENT_FLOAT.fullmatch(v) else v


def as_int(v: Any, path: str, lo: int | None = None, hi: int | None = None) -> int:
    """An int (not a bool, not a float) in ``[lo, hi]``."""
    if not is_int(v):
        raise err(path, f"must be an integer, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise err(path, f"must be in {rng}, got {v}")
    return int(v)


def as_num(v: Any, path: str, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False,
           none_ok: bool = False) -> float | None:
    """A finite float in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``), or None with ``none_ok``; see ``yaml_float``."""
    if v is None and none_ok:
        return None
    v = yaml_float(v)
    if not is_num(v):
        raise err(path, f"must be a finite number{' or null' if none_ok else ''}, got {v!r}")
    x = float(v)
    if lo is not None and (x < lo or (open_lo and x == lo)):
        raise err(path, f"must be {'>' if open_lo else '≥'} {lo}, got {v}")
    if hi is not None and x > hi:
        raise err(path, f"must be ≤ {hi}, got {v}")
    return x


def choice(v: Any, allowed: tuple[str, ...], path: str) -> str:
    """One of the strings ``allowed``."""
    if not isinstance(v, str) or v not in allowed:
        raise err(path, f"unknown value {v!r}; allowed: {', '.join(allowed)}")
    return v


def as_list(v: Any, path: str) -> list:
    """A non-empty list as a list, anything else as a one-element list."""
    if isinstance(v, (list, tuple)):
        if not v:
            raise err(path, "must not be an empty list")
        return list(v)
    return [v]


def size_pair(v: Any, path: str, allow_int: bool) -> list[int] | int | None:
    """None, ``[H, W]`` or (``allow_int``) a short side, sides in [8, 16384] px."""
    if v is None:
        return None
    if allow_int and is_int(v):
        return as_int(v, path, 8, 16384)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return [as_int(v[0], f"{path}[0]", 8, 16384), as_int(v[1], f"{path}[1]", 8, 16384)]
    raise err(path, f"must be {'an int (short side in px) or ' if allow_int else ''}[H, W] with sides in [8, 16384]; "
                    f"got {v!r}")
