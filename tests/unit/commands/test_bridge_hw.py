"""``sorter hw`` helpers that need no device."""

from __future__ import annotations

import pytest

from sorter.commands.hw import parse_valves


def test_parse_valves() -> None:
    assert parse_valves(None, 4) == [0, 1, 2, 3]
    assert parse_valves("0-2,7", 8) == [0, 1, 2, 7]
    assert parse_valves(" 5 ", 8) == [5]


@pytest.mark.parametrize(
    ("text", "msg"), [("3-1", "backwards"), ("0-8", "outside"), (",", "no valves"), ("x", "invalid literal")]
)
def test_parse_valves_errors(text: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse_valves(text, 8)
