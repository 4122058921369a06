"""Tables for BI tools: CSV parsed back, Parquet written and read back with real pyarrow (types, zones, nulls)."""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime
from pathlib import Path

import pytest

from sorter.analytics import export
from sorter.analytics.alerts import Alert
from sorter.analytics.events import TrackEvent
from sorter.analytics.extras import ReportExtraMissingError
from sorter.analytics.report import Report, build_report
from sorter.analytics.timebins import resolve_zone

S = 1_000_000_000
T0 = 1_800_000_000 * S  # 2027-01-15T08:00:00Z


def events() -> list[TrackEvent]:
    out = []
    for k in range(90):  # one every 20 s for 30 min; nothing ejected after 15 min
        cls = ("pet_bottle", "paper", "film")[k % 3]
        decision = "eject" if cls == "pet_bottle" and k < 45 else "not_target"
        out.append(TrackEvent(T0 + k * 20 * S, 10 + k, 20 + k, k, cls, 0.75, 120.5, 60.0, -3.5, -400.25, 6, decision,
                              (k, k + 1000) if decision == "eject" else (), "executed" if decision == "eject" else None))
    return out


def report() -> Report:
    zone, label = resolve_zone("Europe/Berlin")
    r = build_report(events(), t_start_ns=T0, t_end_ns=T0 + 3600 * S, bucket_s=900, zone=zone, zone_label=label,
                     targets=("pet_bottle",), line="west-2")
    alert = Alert("contamination_share", "contamination_share", T0 + 600 * S, None, 12.5, 10.0, "%", 300.0, "too much")
    return r.with_alerts([alert])


def test_bucket_csv_has_offsets_counts_and_empty_cells_for_no_value() -> None:
    r = report()
    rows = list(csv.DictReader(io.StringIO(export.to_csv(export.bucket_table(r), r))))
    assert [x["bucket_start"] for x in rows] == ["2027-01-15T09:00:00+01:00", "2027-01-15T09:15:00+01:00"]
    assert [int(x["objects"]) for x in rows] == [45, 45] and [int(x["objects_pet_bottle"]) for x in rows] == [15, 15]
    assert [int(x["actuated"]) for x in rows] == [15, 0] and {x["actuation"] for x in rows} == {"ejected"}
    assert rows[0]["purity_estimate"] == "0.75" and rows[1]["purity_estimate"] == ""  # nothing ejected: no value
    assert float(rows[0]["throughput_per_min"]) == pytest.approx(3.0)


def test_parquet_round_trip(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="the Parquet test needs the report extra: pip install -e '.[report]'")
    pa = pytest.importorskip("pyarrow")
    r = report()
    path = tmp_path / "buckets.parquet"
    export.write_parquet(export.bucket_table(r), r, path)
    table = pq.read_table(path)
    assert table.schema.field("bucket_start").type == pa.timestamp("ns", tz="Europe/Berlin")
    assert table.schema.field("objects").type == pa.int64() and table.schema.field("purity_estimate").type == pa.float64()
    assert table.schema.metadata[b"sorter.line"] == b"west-2"
    data = table.to_pylist()
    assert [d["objects"] for d in data] == [45, 45]
    assert data[0]["bucket_start"] == datetime.fromisoformat("2027-01-15T09:00:00+01:00")
    assert data[1]["purity_estimate"] is None and data[0]["purity_estimate"] == pytest.approx(0.75)

    ev_path = tmp_path / "events.parquet"
    evs = events()
    export.write_parquet(export.event_table("west-2", evs), r, ev_path)
    back = pq.read_table(ev_path).to_pylist()
    assert len(back) == 90 and back[0]["t_wall_ns"] == T0 and back[0]["command_ids"] == "0,1000"
    assert back[1]["outcome"] is None and back[0]["u_mm"] == -400.25 and back[5]["class_name"] == "film"
    rebuilt = [TrackEvent.from_row([d[c] for c in ("t_wall_ns", "t_first_seen_ns", "t_last_seen_ns", "track_id", "class_name",
                                                   "confidence", "length_mm", "width_mm", "x_mm", "u_mm", "n_detections",
                                                   "decision", "command_ids", "outcome")]) for d in back]
    assert rebuilt == evs  # every field survives

    al_path = tmp_path / "alerts.parquet"
    export.write_parquet(export.alert_table("west-2", r.alerts), r, al_path)
    (a,) = pq.read_table(al_path).to_pylist()
    assert a["end"] is None and a["value"] == 12.5 and a["start"] == datetime.fromisoformat("2027-01-15T09:10:00+01:00")


def test_alert_csv_leaves_the_end_of_an_open_alert_empty() -> None:
    r = report()
    (row,) = csv.DictReader(io.StringIO(export.to_csv(export.alert_table(r.line, r.alerts), r)))
    assert row["start"] == "2027-01-15T09:10:00+01:00" and row["end"] == "" and row["unit"] == "%"


def test_missing_pyarrow_is_named_with_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    r = report()
    with pytest.raises(ReportExtraMissingError, match=r"--format parquet needs the Python package 'pyarrow'.*sorter\[report\]"):
        export.write_parquet(export.bucket_table(r), r, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
