"""Argument checks our layers share: a ``ValueError`` that names the argument and echoes the value.

Constructors validate as Keras' own layers do (``Argument `rate` must be a float in [0, 1);
received rate=1.5.``), so a bad ``[[model.layers]]`` value fails at config load with that message.
"""

from __future__ import annotations

import math
import numbers


def check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"Argument `{name}` must be a float in [0, 1); received {name}={value!r}.")
    return float(value)


def check_coefficient(name, value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value < 0):
        raise ValueError(f"Argument `{name}` must be a finite float >= 0; received {name}={value!r}.")
    return float(value)


def check_positive_integer(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"Argument `{name}` must be a positive integer; received {name}={value!r}.")
    return int(value)


def check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(f"Argument `seed` must be an integer or None; received seed={seed!r}.")
    return None if seed is None else int(seed)
