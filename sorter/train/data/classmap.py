"""Class maps: how the labelling tool's (or a foreign dataset's) class names become the line's classes.

Written as ``source -> target`` pairs, comma-separated on the command line
(``metal->alu_can,plastic->pet_bottle``) or one per line in a file (``#``
starts a comment). A target of ``-`` drops the class on purpose
(``biological->-``). A name that is already a line class maps to itself.
Any other name is *unknown*: refused (the default: the import stops and
lists them) or ignored (dropped, and counted) by choice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sorter.errors import ConfigError

DROP = "-"
Unknown = Literal["refuse", "ignore"]


@dataclass(frozen=True)
class ClassMap:
    """Maps source class names to target classes.

    Attributes:
        targets: the line's class names.
        pairs: explicit ``source -> target`` (``-`` drops).
        unknown: what to do with a name neither mapped nor a target class.
    """

    targets: tuple[str, ...]
    pairs: Mapping[str, str] = field(default_factory=dict)
    unknown: Unknown = "refuse"

    def __post_init__(self) -> None:
        bad = sorted({t for t in self.pairs.values() if t != DROP and t not in self.targets})
        if bad:
            raise ConfigError(
                f"class map targets {bad} are not classes of the model ({', '.join(self.targets)}); "
                f"map to one of those, or to '{DROP}' to drop"
            )

    def lookup(self, name: str) -> str | None:
        """Target class of ``name``; None when dropped or ignored; raises nothing (see :meth:`unknown_names`)."""
        if name in self.pairs:
            t = self.pairs[name]
            return None if t == DROP else t
        if name in self.targets:
            return name
        return None

    def is_unknown(self, name: str) -> bool:
        """Neither mapped nor a target class."""
        return name not in self.pairs and name not in self.targets

    def check(self, names: Iterable[str], where: str) -> Counter[str]:
        """Unknown names among ``names`` (with counts); raises when refused.

        Raises:
            ConfigError: when ``unknown = refuse`` and some names are unknown, listing them and the fix.
        """
        unknown = Counter(n for n in names if self.is_unknown(n))
        if unknown and self.unknown == "refuse":
            listed = ", ".join(f"{n!r} ({k}x)" for n, k in sorted(unknown.items()))
            raise ConfigError(
                f"{where}: unknown classes {listed}; the model knows {', '.join(self.targets)}. "
                f"Map them with --class-map 'NAME->CLASS' (or 'NAME->{DROP}' to drop), or pass --unknown ignore"
            )
        return unknown

    def to_dict(self) -> dict[str, object]:
        return {"pairs": dict(sorted(self.pairs.items())), "unknown": self.unknown}


def parse_pairs(texts: Sequence[str]) -> dict[str, str]:
    """``["a->b,c->d", "e -> f"]`` -> ``{"a": "b", "c": "d", "e": "f"}``; also accepts ``a=b`` and ``a:b``."""
    pairs: dict[str, str] = {}
    for text in texts:
        for raw in text.replace("\n", ",").split(","):
            item = raw.split("#", 1)[0].strip()
            if not item:
                continue
            for sep in ("->", "=", ":"):
                if sep in item:
                    src, dst = (s.strip() for s in item.split(sep, 1))
                    break
            else:
                raise ConfigError(f"class map entry {item!r}: expected SOURCE->TARGET, e.g. metal->alu_can")
            if not src or not dst:
                raise ConfigError(f"class map entry {item!r}: both sides are needed, e.g. metal->alu_can")
            if src in pairs and pairs[src] != dst:
                raise ConfigError(f"class map maps {src!r} twice ({pairs[src]!r} and {dst!r}); keep one")
            pairs[src] = dst
    return pairs


def load_class_map(specs: Sequence[str], targets: tuple[str, ...], unknown: Unknown = "refuse") -> ClassMap:
    """A class map from ``--class-map`` values: inline pairs or ``@file`` / an existing file path."""
    texts = []
    for s in specs:
        path = Path(s[1:]) if s.startswith("@") else Path(s)
        if s.startswith("@") or (("->" not in s and "=" not in s) and path.is_file()):
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except OSError as e:
                raise ConfigError(f"class map file '{path}' cannot be read ({e.strerror}); check the path") from None
        else:
            texts.append(s)
    return ClassMap(targets, parse_pairs(texts), unknown)
