"""Fast construction of many frozen :class:`Track` entities from columns.

A frozen dataclass's ``__init__`` sets each field through
``object.__setattr__``, one interpreted call per field: about 3 us per 17-field
track, so a dense belt's 60 tracks cost 0.2 ms a frame, most of the tracker's
budget. Here each field is set for all tracks at once by mapping the slot's own
(C-level) descriptor over the column, which builds the same objects in about
a third of the time. Nothing else changes: the result is an ordinary, fully
initialised, frozen ``Track`` (``Track`` has no ``__post_init__`` to skip; the
unit tests check equality with ``Track(*fields)``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from itertools import repeat
from typing import Any

from sorter.entities import Track

#: field names in ``Track``'s order (the order of the columns given to :func:`build_tracks`)
TRACK_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Track))

_SETTERS: tuple[Callable[[Track, Any], None], ...] = tuple(getattr(Track, name).__set__ for name in TRACK_FIELDS)
_new = object.__new__


def build_tracks(n: int, columns: Sequence[Iterable[Any]]) -> list[Track]:
    """``[Track(*row) for row in zip(*columns)]``, built column by column.

    Args:
        n: number of tracks (the length of every column).
        columns: one iterable per field of ``Track``, in field order.

    Raises:
        ValueError: if the number of columns is not the number of fields.
    """
    if len(columns) != len(_SETTERS):
        raise ValueError(f"build_tracks needs {len(_SETTERS)} columns ({', '.join(TRACK_FIELDS)}), got {len(columns)}")
    tracks: list[Track] = list(map(_new, repeat(Track, n)))
    for setter, column in zip(_SETTERS, columns, strict=True):
        deque(map(setter, tracks, column), maxlen=0)  # consume: run every setter, keep nothing
    return tracks
