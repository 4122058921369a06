"""Which config changes a running line may take without a restart (pure).

Safe keys change decisions only: what to eject (``policy.*``) and the
detector's score threshold. Everything else (camera, geometry, valves, links,
the model) sizes buffers, opens devices or moves the ejection point, so a
change there needs a restart and is refused with the list of keys.
"""

from __future__ import annotations

from typing import Any

from sorter.config import Config

SAFE_KEYS = ("policy.", "detector.min_score")


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}{k}.", out)
    else:
        out[prefix.rstrip(".")] = value


def changed_keys(old: Config, new: Config) -> list[str]:
    """Dotted keys whose value differs between two configs, sorted."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(old.model_dump(mode="json"), "", a)
    _flatten(new.model_dump(mode="json"), "", b)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def is_safe(key: str) -> bool:
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_KEYS)


def unsafe_changes(old: Config, new: Config) -> list[str]:
    """The changed keys that need a restart (empty: the new config may be applied live)."""
    return [k for k in changed_keys(old, new) if not is_safe(k)]
