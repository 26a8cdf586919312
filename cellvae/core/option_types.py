"""Numbers within bounds, refused in one line naming the bound: `bounded` (an argparse type, also used to check
settings) and `schema_number` (the type and bounds of a numeric config key, from config/config.schema.yaml, the one
place they are written). Shared by the commands (cellvae.cli.common) and the fetch library (cellvae.data.sources), which
must not import the CLI.
"""

from __future__ import annotations

import argparse
import math


def bounded(kind: type, *, minimum=None, maximum=None, above=None, source: str = ""):
    """An argparse type: a finite `kind` (int or float) within the bounds (`above`: exclusive minimum); any other
    value is refused with the bound it breaks, e.g. "argument --retries: expected an integer >= 0, got '-1'"."""
    low = f">= {minimum}" if minimum is not None else f"> {above}" if above is not None else ""
    if minimum is not None and maximum is not None:
        wanted = f"from {minimum} to {maximum}"
    else:
        wanted = " and ".join(bound for bound in (low, f"<= {maximum}" if maximum is not None else "") if bound)
    wanted = " ".join(part for part in ("an integer" if kind is int else "a finite number", wanted) if part)
    wanted += f" ({source})" if source else ""

    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError, OverflowError):
            value = None
        if (
            value is None
            or (kind is float and not math.isfinite(value))
            or (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = parse.wanted = wanted
    return parse


positive_int = bounded(int, minimum=1)


def schema_number(key: str):
    """The bounded argparse type of a numeric config key, e.g. "fetch.retries": the type, minimum, maximum and
    exclusiveMinimum of config/config.schema.yaml (the one place the bounds are written)."""
    from cellvae.core.schema_check import rule_at

    node = rule_at(key)
    kind = {"integer": int, "number": float}[node["type"]]
    limits = {"minimum": node.get("minimum"), "maximum": node.get("maximum"), "above": node.get("exclusiveMinimum")}
    return bounded(kind, **limits, source=f"config {key}")
