"""Malformed configuration files and overrides: a clear error naming the file/key and the fix, never a traceback or
a hang (alias bombs, duplicate keys, other encodings, deep nesting, non-finite numbers, negative seeds, bad --set)."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from sorter.cli import main as cli_main
from sorter.config import load_config
from sorter.config_yaml import MAX_EXPANDED_VALUES
from sorter.errors import ConfigError

#: a few lines that expand to 10^9 values: "billion laughs"
ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
sim:
  class_mix: *i
"""


def _problems(tmp_path: Path, text: str | bytes, *overrides: str) -> list[str]:
    f = tmp_path / "site.yaml"
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config([f], overrides)
    return e.value.problems


def test_alias_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    problems = _problems(tmp_path, ALIAS_BOMB)
    assert len(problems) == 1
    assert "site.yaml" in problems[0] and str(MAX_EXPANDED_VALUES) in problems[0] and "aliases" in problems[0]
    assert len(problems[0]) < 400  # the expanded value is never printed


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    f = tmp_path / "site.yaml"
    f.write_text("x-mix: &mix {pet_bottle: 2, film: 1}\nsim:\n  class_mix: *mix\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:  # an alias works; the unknown top-level key is the only problem
        load_config([f])
    assert len(e.value.problems) == 1 and "x-mix" in e.value.problems[0]
    f.write_text("sim:\n  class_mix: &mix {pet_bottle: 2, film: 1}\nline:\n  name: a\n", encoding="utf-8")
    assert load_config([f]).sim.class_mix == {"pet_bottle": 2, "film": 1}


def test_self_referencing_alias_is_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "sim: &s\n  class_mix: *s\n")
    assert "refers to the value that contains it" in problems[0] or "aliases" in problems[0]


def test_duplicate_keys_name_both_lines(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "sim:\n  density_per_m2: 2\n  seed: 3\n  density_per_m2: 4\n")
    assert problems == [
        f"config file '{tmp_path / 'site.yaml'}': key 'sim.density_per_m2' is written twice (lines 2 and 4); "
        "YAML would silently keep the last one: delete one of them"
    ]


def test_duplicate_sections_are_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "sim:\n  seed: 1\nline:\n  name: a\nsim:\n  seed: 2\n")
    assert "'sim' is written twice (lines 1 and 5)" in problems[0]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (codecs.BOM_UTF16_LE + "sim:\n  seed: 2\n".encode("utf-16-le"), "UTF-16"),
        ("sim:\n  seed: 2\n".encode("utf-16-le"), "UTF-16 text without a byte-order mark"),
        (codecs.BOM_UTF32_LE + "sim:\n  seed: 2\n".encode("utf-32-le"), "UTF-32"),
        ("line:\n  name: Gr\u00fcn\n".encode("latin-1"), "not UTF-8 text (byte 0xfc at line 2)"),
        (bytes(range(256)) * 4, "binary"),
    ],
    ids=["utf16-bom", "utf16-no-bom", "utf32", "latin1", "random-bytes"],
)
def test_other_encodings_say_save_as_utf8(tmp_path: Path, raw: bytes, words: str) -> None:
    problems = _problems(tmp_path, raw)
    assert words in problems[0] and "site.yaml" in problems[0]
    assert "UTF-8" in problems[0]


def test_utf8_with_byte_order_mark_is_read(tmp_path: Path) -> None:
    f = tmp_path / "site.yaml"
    f.write_bytes(codecs.BOM_UTF8 + "line:\n  name: gr\u00fcn\n".encode())
    assert load_config([f]).line.name == "gr\u00fcn"


@pytest.mark.parametrize("brackets", ["[" * 5000 + "]" * 5000, "{a: " * 5000 + "1" + "}" * 5000])
def test_5000_nested_brackets_are_refused(tmp_path: Path, brackets: str) -> None:
    problems = _problems(tmp_path, f"sim:\n  class_mix: {brackets}\n")
    assert "nests deeper than 32 levels at line 2" in problems[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("airjet.y_eject_mm", ".nan"),
        ("airjet.y_eject_mm", ".inf"),
        ("belt.nominal_speed_mm_s", "-.inf"),
        ("airjet.y_eject_mm", "1e308"),
        ("sim.density_per_m2", ".nan"),
        ("sim.mount.height_mm", "1e308"),
        ("tracker.gate_mm", ".inf"),
        ("airjet.valves.latency_ms", ".nan"),
        ("policy.min_confidence", ".nan"),
        ("detector.oracle.box_jitter_px", "1e308"),
    ],
)
def test_non_finite_and_absurd_floats_are_refused_by_key(tmp_path: Path, key: str, value: str) -> None:
    section, _, name = key.rpartition(".")
    parts = section.split(".")
    yaml_text = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(parts)) + f"{'  ' * len(parts)}{name}: {value}\n"
    problems = _problems(tmp_path, yaml_text)
    assert any(f"'{key}'" in p and f"line {len(parts) + 1}" in p for p in problems), problems
    assert any("finite" in p or "at most" in p or "less than" in p for p in problems), problems
    # the same through --set names the override
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"{key}={value}"])
    assert any(f"--set '{key}={value}'" in p and f"'{key}'" in p for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("key", ["sim.seed", "detector.oracle.seed"])
def test_negative_seeds_are_refused(key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"{key}=-1"])
    assert f"'{key}' = -1 is invalid: expected a number at least 0" in e.value.problems[0]


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("sim.class_mix={pet_bottle: [1", "not valid YAML"),
        ("sim.class_mix=[a, b", "not valid YAML"),
        ("line.name=\"open", "not valid YAML"),
        ("sim.class_mix=&a [*a]", "refers to the value that contains it"),
        ("sim.seed", "expected KEY.PATH=VALUE"),
        ("=3", "is not a key path"),
        ("sim..seed=3", "is not a key path"),
        ("sim.seed=1\n---\n2", "not valid YAML"),
    ],
)
def test_bad_yaml_in_set_names_the_override(override: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert e.value.problems[0].startswith("--set ")
    assert words in e.value.problems[0]


BAD_FILES: dict[str, str | bytes] = {
    "alias-bomb": ALIAS_BOMB,
    "duplicate": "sim:\n  seed: 1\n  seed: 2\n",
    "utf16": codecs.BOM_UTF16_LE + "sim:\n  seed: 2\n".encode("utf-16-le"),
    "latin1": "line:\n  name: Gr\u00fcn\n".encode("latin-1"),
    "nested": "sim:\n  class_mix: " + "[" * 5000 + "]" * 5000 + "\n",
    "nan": "airjet:\n  y_eject_mm: .nan\n",
    "huge": "airjet:\n  y_eject_mm: 1e308\n",
    "negative-seed": "sim:\n  seed: -5\n",
    "top-level-list": "- a\n- b\n",
    "tab-indent": "sim:\n\tseed: 1\n",
    "empty-key": ": 3\n",
    "mapping-as-key": "? {a: 1}\n: 2\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["check", "run"])
def test_cli_reports_bad_configs_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, command: str
) -> None:
    f = tmp_path / f"{name}.yaml"
    text = BAD_FILES[name]
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    args = ["check", "--config-only"] if command == "check" else ["run", "--fast", "--duration", "2", "--quiet"]
    assert cli_main([*args, "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Configuration problems:" in err and f"{name}.yaml" in err
    assert max(len(line) for line in err.splitlines()) < 800
