"""One registry shape for every stage, open to plugins through Python entry points.

Each stage keeps one dict ``type -> "module:function"`` of its built-in factories
(``sorter.capture.registry.SOURCES``, ``sorter.detect.registry.DETECTORS``,
``sorter.actuate.registry.ACTUATORS``); nothing is imported until a type is used.
A separate package adds a camera, a detector backend or an actuator (a vendor's
robot driver, say) by declaring an entry point in the stage's group, e.g. in its
``pyproject.toml``::

    [project.entry-points."sorter.actuators"]
    acme_robot = "acme_sorter.robot:create"

Then ``actuator.type: acme_robot`` is a valid config value, the factory gets the
stage's arguments (the same as the built-ins'), and what it builds is checked
against the stage's protocol. ``sorter check`` lists every plugin and where it
came from. Standard library only: the config schema validates ``type`` fields
with the names found here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from sorter.errors import ConfigError

Kind = Literal["camera", "detector", "actuator"]

#: stage -> entry-point group
GROUPS: dict[Kind, str] = {"camera": "sorter.capture", "detector": "sorter.detectors", "actuator": "sorter.actuators"}

BUILT_IN = "built-in"


@dataclass(frozen=True, slots=True)
class FactoryRef:
    """Where the factory of one ``type`` lives.

    Attributes:
        kind: ``camera``, ``detector`` or ``actuator``.
        name: the config's ``type`` value.
        target: ``module:function``.
        origin: ``built-in``, or ``plugin DIST VERSION`` for an entry point.
    """

    kind: Kind
    name: str
    target: str
    origin: str = BUILT_IN

    @property
    def is_plugin(self) -> bool:
        return self.origin != BUILT_IN


def _origin(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"plugin {dist.name} {dist.version}" if dist is not None else "plugin (unknown package)"


def plugins(kind: Kind) -> dict[str, FactoryRef]:
    """The plugin factories of a stage, by type name (read from the installed packages' metadata; nothing imported).

    When two packages declare the same name, the first one found is kept.
    """
    found: dict[str, FactoryRef] = {}
    for ep in entry_points(group=GROUPS[kind]):
        found.setdefault(ep.name, FactoryRef(kind, ep.name, ep.value, _origin(ep)))
    return found


def all_plugins() -> list[FactoryRef]:
    """Every plugin of every stage (for ``sorter check``)."""
    return [ref for kind in GROUPS for ref in plugins(kind).values()]


def describe_types(kind: Kind, built_in: Sequence[str]) -> str:
    """``built-in: a, b; plugins: c`` (or ``plugins: none installed``)."""
    extra = [n for n in plugins(kind) if n not in built_in]
    return f"built-in: {', '.join(built_in)}; plugins: {', '.join(extra) or 'none installed'}"


def check_type_name(kind: Kind, name: str, built_in: Sequence[str]) -> str:
    """Validate a config ``type``: a built-in or an installed plugin.

    Raises:
        ValueError: unknown, with the valid names (for the schema's error message).
    """
    if name in built_in or name in plugins(kind):
        return name
    raise ValueError(f"unknown {kind} type {name!r}; valid types are {describe_types(kind, built_in)}")


def resolve(
    kind: Kind, name: str, built_in: Mapping[str, str], config_key: str, wired_elsewhere: Sequence[str] = ()
) -> FactoryRef:
    """The factory of ``name``: a built-in wins over a plugin of the same name.

    Args:
        kind: the stage.
        name: the config's ``type``.
        built_in: the stage's registry.
        config_key: the config key, for the error message.
        wired_elsewhere: built-in names valid in the config but built by someone else (the simulated camera).

    Raises:
        ConfigError: unknown type, listing the valid ones.
    """
    if name in built_in:
        return FactoryRef(kind, name, built_in[name])
    ref = plugins(kind).get(name)
    if ref is None:
        valid = describe_types(kind, [*wired_elsewhere, *built_in])
        raise ConfigError(f"{config_key} = {name!r} is unknown; valid: {valid}")
    return ref


def load(ref: FactoryRef) -> Callable[..., Any]:
    """Import the factory (lazily, at first use).

    Raises:
        ConfigError: the module or function cannot be loaded, or is not callable.
    """
    module_name, _, attr = ref.target.partition(":")
    what = f"{ref.kind} type {ref.name!r} ({ref.origin}, {ref.target})"
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except ImportError as e:
        raise ConfigError(f"{what} cannot be imported ({e}); install its package's dependencies") from None
    except AttributeError as e:
        raise ConfigError(f"{what} is missing ({e}); check the entry point of its package") from None
    if not callable(obj):
        raise ConfigError(f"{what} is not a factory function; check the entry point of its package")
    return obj  # type: ignore[no-any-return]


def protocol_members(protocol: type) -> list[str]:
    """The attributes and methods a ``Protocol`` class asks for."""
    names: set[str] = set()
    for base in protocol.__mro__:
        if base is object or base.__name__ in ("Protocol", "Generic"):
            continue
        names.update(n for n in getattr(base, "__annotations__", {}) if not n.startswith("_"))
        names.update(n for n in vars(base) if not n.startswith("_"))
    return sorted(names)


def check_built(ref: FactoryRef, obj: object, protocol: type) -> None:
    """Refuse what a factory built when it lacks a member of the stage's protocol.

    Raises:
        ConfigError: naming the type, where it came from and the missing members.
    """
    missing = [n for n in protocol_members(protocol) if not hasattr(obj, n)]
    if missing:
        close = getattr(obj, "close", None)
        if callable(close):
            close()  # release what it opened before refusing it
        raise ConfigError(
            f"{ref.kind} type {ref.name!r} ({ref.origin}) built a {type(obj).__name__} without "
            f"{', '.join(missing)} of the {protocol.__name__} protocol; fix or update that package"
        )
