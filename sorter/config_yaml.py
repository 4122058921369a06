"""Reading configuration YAML safely: bounded, strict, and remembering where every key came from.

A config file is small and written by people, so anything else is a mistake or
an attack and is refused with the file, the line and the fix, never a hang or a
traceback: files that are not UTF-8 (UTF-16 from a Windows editor included),
duplicate keys (YAML would silently keep the last one), nesting deeper than any
config needs (thousands of brackets would exhaust the parser's recursion), and
anchors/aliases that expand beyond a small budget (an "alias bomb" of a few
lines expands to billions of values). Each key's origin (``file line N``, or
the ``--set`` that gave it) is recorded so errors blame the right place.

Pure: PyYAML only, nothing above :mod:`sorter.errors`.
"""

from __future__ import annotations

import codecs
import reprlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sorter.errors import ConfigError

#: deepest nesting accepted (the schema needs 4; lists of mappings add 2)
MAX_DEPTH = 32
#: most values a document may hold once every alias is expanded
MAX_EXPANDED_VALUES = 20_000
#: largest config file read, bytes
MAX_FILE_BYTES = 1 << 20

KeyPath = tuple[str, ...]

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = 6
_short.maxtuple = 6
_short.maxdict = 4
_short.maxset = 4
_short.maxlevel = 2
_short.maxlong = 40


def short_repr(value: Any) -> str:
    """A bounded ``repr`` for error messages: never walks a huge value (an expanded alias, say) in full."""
    text = _short.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class YamlDoc:
    """A parsed YAML document and where each key was written.

    Attributes:
        data: the document (a mapping for a config file).
        lines: key path -> 1-based line of the key in the file.
    """

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)


class _RefusedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader with a depth limit while composing (the composer recurses once per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _RefusedError(
                    f"nests deeper than {MAX_DEPTH} levels at line {mark.line + 1}; a config needs a few levels "
                    "(section: key: value): check the brackets there"
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


def decode_config_bytes(raw: bytes, source: str) -> str:
    """UTF-8 text of a config file (a UTF-8 byte-order mark is allowed), or a ConfigError saying what it is instead."""
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{source}: {len(raw)} bytes is far larger than any config ({MAX_FILE_BYTES} bytes at most); "
            "check that this is the right file"
        )
    for bom, name in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if raw.startswith(bom):
            raise ConfigError(f"{source}: the file is {name} text; save it as UTF-8 (in most editors: 'Save with encoding')")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        utf16 = raw[1:2] == b"\x00" or raw[:1] == b"\x00"
        guess = "UTF-16 text without a byte-order mark, or a binary file" if utf16 else "binary"
        raise ConfigError(f"{source}: NUL byte at line {line}: this looks like {guess}, not a YAML config; save it as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{source}: not UTF-8 text (byte 0x{raw[e.start]:02x} at line {line}); save the file as UTF-8"
        ) from None


def read_config_file(path: Path) -> YamlDoc:
    """Read and parse one config file (see :func:`parse_yaml`)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file '{path}' does not exist; check the path or run 'sorter check' on a file from configs/"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config file '{path}' is a folder; give the YAML file inside it") from None
    except OSError as e:
        raise ConfigError(f"config file '{path}' cannot be read ({e.strerror}); check its permissions") from None
    source = f"config file '{path}'"
    return parse_yaml(decode_config_bytes(raw, source), source)


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document with the limits above.

    Args:
        text: the YAML text.
        source: how to name it in messages (``config file 'x.yaml'``, ``--set a.b=1``).

    Raises:
        ConfigError: bad syntax (with line and column), duplicate keys (both lines), too deep, alias bomb,
            self-referencing alias, or more than one document.
    """
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(None)
        _check_expansion(node)
        lines: dict[KeyPath, int] = {}
        _check_mappings(node, (), lines, 0)
        data = loader.construct_document(node)
    except _RefusedError as e:
        raise ConfigError(f"{source}: {e.message}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = e.problem or e.context or "syntax error"
        raise ConfigError(f"{source}: not valid YAML{where}: {what}; fix the syntax there") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({short_repr(str(e))}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{source}: nests too deeply to read; a config needs a few levels") from None
    finally:
        loader.dispose()
    return YamlDoc(data, lines)


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            yield k
            yield v


def _check_expansion(root: yaml.Node) -> None:
    """Refuse documents that expand (through aliases) past the budget, or that refer to themselves."""
    size: dict[int, int] = {}
    active: set[int] = set()

    def expanded(node: yaml.Node) -> int:
        key = id(node)
        if key in size:
            return size[key]
        if key in active:
            mark = node.start_mark
            raise _RefusedError(f"an alias at line {mark.line + 1} refers to the value that contains it; write the values out")
        active.add(key)
        total = 1
        for child in _children(node):
            total += expanded(child)
            if total > MAX_EXPANDED_VALUES:
                break
        active.discard(key)
        size[key] = total
        if total > MAX_EXPANDED_VALUES:
            raise _RefusedError(
                f"its anchors and aliases (&name / *name) expand to more than {MAX_EXPANDED_VALUES} values "
                "(a config holds a few hundred); write the values out instead of repeating aliases"
            )
        return total

    expanded(root)


def _key_text(node: yaml.Node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _check_mappings(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], depth: int) -> None:
    """Refuse duplicate keys (naming both lines) and record the line of every key path."""
    if depth > MAX_DEPTH:  # aliases can nest shared nodes; the budget above bounds the walk
        return
    if isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _check_mappings(child, (*path, str(i)), lines, depth + 1)
        return
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = _key_text(key_node)
        if key is None or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = key_node.start_mark.line + 1
        if key in seen:
            where = ".".join((*path, key))
            raise _RefusedError(
                f"key '{where}' is written twice (lines {seen[key]} and {line}); YAML would silently keep the last one: "
                "delete one of them"
            )
        seen[key] = line
        lines.setdefault((*path, key), line)
        _check_mappings(value_node, (*path, key), lines, depth + 1)
