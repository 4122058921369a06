"""Layering configuration sources: files in order, then ``--set`` overrides, remembering who set each key.

Works on plain mappings (the schema is :mod:`sorter.config`). Every key keeps its
origin (``config file 'site.yaml' line 12`` or ``--set sim.densty=2``) so that an
error blames the right place, and the folder of the file that set it, so that a
relative path in a config file means "next to this file" wherever the process
was started (a systemd service starts in ``/``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sorter.config_yaml import KeyPath, YamlDoc, parse_yaml, read_config_file, short_repr
from sorter.errors import ConfigError

#: keys holding a file or folder path: relative values resolve against the folder of the file that sets them
PATH_KEYS: tuple[KeyPath, ...] = (
    ("camera", "calibration_file"),
    ("detector", "model"),
    ("detector", "engine_cache_dir"),
    ("analytics", "store"),
    ("service", "flight_recorder_dir"),
)
#: camera types whose ``camera.uri`` is a file or folder
FILE_CAMERA_TYPES = ("video", "images")

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


@dataclass
class Layers:
    """Merged configuration data and where each key came from.

    Attributes:
        data: the merged mapping.
        origins: key path -> ``config file 'x.yaml' line N`` or ``--set k=v``.
        bases: key path -> folder of the file that set it (None: given on the command line).
        source: the files, for messages about the whole configuration.
    """

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[KeyPath, str] = field(default_factory=dict)
    bases: dict[KeyPath, Path | None] = field(default_factory=dict)
    source: str = "config"

    def _forget(self, path: KeyPath) -> None:
        n = len(path)
        for table in (self.origins, self.bases):
            for k in [k for k in table if k[:n] == path]:
                del table[k]

    def merge(self, over: Mapping[str, Any], origin_of: Any, base: Path | None, prefix: KeyPath = ()) -> None:
        """Merge ``over`` into ``data`` (mappings merge, anything else replaces), recording origins."""
        target = self.data
        for p in prefix:
            target = target[p]
        for k, v in over.items():
            key = str(k)
            path = (*prefix, key)
            if isinstance(v, Mapping) and isinstance(target.get(key), dict):
                self.origins[path] = origin_of(path)
                self.bases[path] = base
                self.merge(v, origin_of, base, path)
            else:
                self._forget(path)
                target[key] = _plain(v)
                self.origins[path] = origin_of(path)
                self.bases[path] = base
                if isinstance(v, Mapping):
                    for sub in _key_paths(v, path):
                        self.origins[sub] = origin_of(sub)
                        self.bases[sub] = base


def _plain(v: Any) -> Any:
    """Copy mappings so that later merges never alter a shared (aliased) value."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _key_paths(m: Mapping[str, Any], prefix: KeyPath) -> Iterable[KeyPath]:
    for k, v in m.items():
        path = (*prefix, str(k))
        yield path
        if isinstance(v, Mapping):
            yield from _key_paths(v, path)


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """``a.b.c=VALUE`` -> (``("a", "b", "c")``, the value parsed as YAML).

    Raises:
        ConfigError: no ``=``, a key that is not dotted names, or a value that is not valid YAML.
    """
    shown = short_repr(text)
    if "=" not in text:
        raise ConfigError(f"--set {shown}: expected KEY.PATH=VALUE, e.g. --set sim.density_per_m2=4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not _KEY_RE.match(key):
        raise ConfigError(
            f"--set {shown}: {short_repr(key)} is not a key path; write section.key=value, e.g. --set sim.density_per_m2=4"
        )
    if raw == "":
        return tuple(key.split(".")), ""
    try:
        doc = parse_yaml(raw, f"--set {shown}")
    except ConfigError as e:
        raise ConfigError(
            [f"{p}; quote text values, e.g. --set '{key}=\"...\"' (lists: [a, b])" for p in e.problems]
        ) from None
    return tuple(key.split(".")), doc.data


def read_layers(paths: Sequence[Path], overrides: Iterable[str]) -> Layers:
    """Read every file and override in order (later ones win)."""
    layers = Layers(source=", ".join(str(p) for p in paths) or "config")
    for p in paths:
        doc = read_config_file(p)
        data = _top_mapping(doc, f"config file '{p}'")
        src = f"config file '{p}'"

        def origin(path: KeyPath, doc: YamlDoc = doc, src: str = src) -> str:
            line = doc.lines.get(path)
            return f"{src} line {line}" if line else src

        layers.merge(data, origin, p.resolve().parent)
    for text in overrides:
        key, value = parse_override(text)
        node: dict[str, Any] = {}
        cur = node
        for part in key[:-1]:
            cur[part] = {}
            cur = cur[part]
        cur[key[-1]] = value
        src = f"--set {short_repr(text)}"
        layers.merge(node, lambda _path, src=src: src, None)
    return layers


def _top_mapping(doc: YamlDoc, source: str) -> dict[str, Any]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections (line: ..., camera: ...), got {type(doc.data).__name__}"
        )
    return doc.data


def _resolve_one(value: str, base: Path) -> str:
    if value.startswith("sqlite:///"):
        rest = value.removeprefix("sqlite:///")
        return value if rest.startswith("/") or rest == ":memory:" else "sqlite:///" + str(base / rest)
    if "://" in value or value == ":memory:":
        return value
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else base / p)


def resolve_relative_paths(layers: Layers) -> None:
    """Make relative paths set in a file relative to that file's folder (in place)."""
    keys = list(PATH_KEYS)
    camera = layers.data.get("camera")
    if isinstance(camera, dict) and camera.get("type") in FILE_CAMERA_TYPES:
        keys.append(("camera", "uri"))
    for section, key in keys:
        sec = layers.data.get(section)
        if not isinstance(sec, dict):
            continue
        value = sec.get(key)
        base = layers.bases.get((section, key))
        if isinstance(value, str) and value and base is not None:
            sec[key] = _resolve_one(value, base)
