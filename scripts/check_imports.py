#!/usr/bin/env python3
"""The import contract of DESIGN.md section 2, checked on the source (AST, nothing imported).

Rules (every ``import`` counts, also inside functions and ``if TYPE_CHECKING:``):

* a stage (capture, detect, track, schedule, actuate) never imports a sibling stage;
* ``entities``, ``geometry``, ``track/`` and ``schedule/`` import only the standard library, numpy, scipy and numba
  (computation, no I/O)
  (``track/`` and ``schedule/`` also ``entities``, the one thing stages share);
* only ``runtime/`` imports every stage;
* ``runtime`` never imports ``commands``;
* ``config.py`` imports nothing above it: ``entities``, ``errors``, ``plugins`` (type names), the simulator's
  own section schema ``sim/config.py`` and its readers ``config_yaml``/``config_load``/``config_words`` (which
  import only ``errors`` and each other), the alert rules' schema ``analytics/alerts.py`` and the detector's region
  schema ``detect/roi_config.py``;
* ``calib/`` (the calibration maths) does not import ``runtime``, ``sim`` or ``actuate``;
* ``calib_store/`` (calibration files) depends on nothing above ``geometry`` and ``errors``;
* ``firmware_bridge`` never imports ``sorter``;
* no module imports another module's private names (``from x import _y``).

Usage: ``scripts/check_imports.py [--root DIR]``; prints one line per violation and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STAGES = ("capture", "detect", "track", "schedule", "actuate")
PURE = {  # module or package -> the sorter modules it may import (besides itself)
    "sorter.entities": (),
    "sorter.geometry": (),
    "sorter.track": ("sorter.entities",),
    "sorter.schedule": ("sorter.entities",),
}
PURE_THIRD_PARTY = ("numpy", "scipy", "numba")
_PURE_RULE = "the pure core imports only the standard library, numpy, scipy, numba and entities"
CONFIG_READERS = ("sorter.config_yaml", "sorter.config_load", "sorter.config_words")
CONFIG_MAY_IMPORT = (
    "sorter.entities", "sorter.errors", "sorter.plugins", "sorter.sim.config", *CONFIG_READERS, "sorter.analytics.alerts",
    "sorter.detect.roi_config",
)
CALIB_MUST_NOT = ("sorter.runtime", "sorter.sim", "sorter.actuate")
CALIB_STORE_MAY_IMPORT = ("sorter", "sorter.errors", "sorter.geometry")


@dataclass(frozen=True)
class Import:
    """One imported module (and the names taken from it) at a line of a file."""

    path: Path
    line: int
    importer: str
    module: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.detail}"


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> Iterator[Import]:
    """Every import of a file, relative ones resolved."""
    me = module_name(root, path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, me, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield Import(path, node.lineno, me, module, tuple(a.name for a in node.names))


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "sorter" and parts[1] in STAGES else None


def _is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def check_import(imp: Import) -> Iterator[Violation]:
    """The violations of one import."""
    who, mod = imp.importer, imp.module
    v = lambda rule, detail: Violation(imp.path, imp.line, rule, detail)  # noqa: E731
    if _within(who, "firmware_bridge") and _within(mod, "sorter"):
        yield v("firmware_bridge never imports sorter", f"{who} imports {mod}")
    mine, theirs = _stage_of(who), _stage_of(mod)
    if mine and theirs and mine != theirs:
        yield v("a stage never imports a sibling stage", f"{who} ({mine}) imports {mod} ({theirs})")
    for pure, allowed in PURE.items():
        if not _within(who, pure) or _within(mod, pure) or mod == "__future__":
            continue
        if _within(mod, "sorter") or _within(mod, "firmware_bridge"):
            if not any(_within(mod, a) for a in allowed):
                yield v(_PURE_RULE, f"{who} imports {mod}")
        elif not _is_stdlib(mod) and mod.split(".")[0] not in PURE_THIRD_PARTY:
            yield v(_PURE_RULE, f"{who} imports {mod}")
    if _within(who, "sorter.runtime") and _within(mod, "sorter.commands"):
        yield v("runtime never imports commands", f"{who} imports {mod}")
    if who == "sorter.config" and _within(mod, "sorter") and mod not in CONFIG_MAY_IMPORT:
        yield v("config.py imports nothing above it", f"{who} imports {mod}")
    if who in CONFIG_READERS and _within(mod, "sorter") and mod not in ("sorter.errors", *CONFIG_READERS):
        yield v("the config readers import only errors", f"{who} imports {mod}")
    if _within(who, "sorter.calib") and any(_within(mod, m) for m in CALIB_MUST_NOT):
        yield v("calib does not import runtime, sim or actuate", f"{who} imports {mod}")
    if (
        _within(who, "sorter.calib_store")
        and _within(mod, "sorter")
        and not _within(mod, "sorter.calib_store")
        and mod not in CALIB_STORE_MAY_IMPORT
    ):
        yield v("calib_store depends on nothing above geometry and errors", f"{who} imports {mod}")
    private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
    if private and mod != who:
        yield v("no private cross-module imports", f"{who} imports {', '.join(private)} from {mod}")


def check(root: Path) -> list[Violation]:
    """Every violation under ``root`` (the folder holding ``sorter/`` and ``firmware_bridge/``)."""
    files = sorted(p for pkg in ("sorter", "firmware_bridge") for p in (root / pkg).rglob("*.py"))
    imports = [imp for f in files for imp in imports_of(root, f)]
    found = [v for imp in imports for v in check_import(imp)]
    stages_by_package: dict[str, set[str]] = {}
    first_line: dict[str, Import] = {}
    for imp in imports:
        stage = _stage_of(imp.module)
        parts = imp.importer.split(".")
        package = ".".join(parts[:2])
        if stage and parts[0] == "sorter" and package != "sorter.runtime":
            stages_by_package.setdefault(package, set()).add(stage)
            first_line.setdefault(package, imp)
    for package, stages in sorted(stages_by_package.items()):
        if set(STAGES) <= stages:
            imp = first_line[package]
            found.append(Violation(imp.path, imp.line, "only runtime/ imports every stage", f"{package} imports all stages"))
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="repository root")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    violations = check(root)
    for v in violations:
        print(str(v).replace(str(root) + "/", ""))
    if violations:
        print(f"import contract: {len(violations)} violation(s)", file=sys.stderr)
        return 1
    print("import contract: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
