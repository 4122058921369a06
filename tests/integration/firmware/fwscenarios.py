"""Deterministic runs of the emulated board (``sorter-board --script``) and what they measure.

Each scenario builds a timed input (frames at emulated times), runs the board on it as fast as the emulator
goes, and reads the answer from the event log: pin edges with their cycle and encoder count, compare matches and
the frames on the wire. Emulated time is exact, so the figures do not depend on the machine's load; the tests use
small counts, ``scripts/bench_firmware.py`` and ``scripts/fuzz_firmware.py`` large ones.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fwboard import (
    ACK_QUEUED,
    F_CPU_HZ,
    FAULT_WATCHDOG,
    MESSAGES,
    Build,
    Frame,
    Script,
    decode_block,
    encode,
    encode_raw,
    frames,
    run_script,
)

BELT_START_S = 0.05  #: the belt stands still while the firmware boots, then runs
SESSION = 0x5EED5EED
HEARTBEAT_US = 20_000
VALVES = 32
COUNTS_PER_MM = 10.0


def count_at(t_us: float, speed_cps: float) -> int:
    """Encoder count at emulated time ``t_us`` (rising edges since the belt started)."""
    return max(0, math.floor((t_us / 1e6 - BELT_START_S) * speed_cps + 1e-9))


def profile(speed_cps: float) -> str:
    return f"0:0,{BELT_START_S}:{speed_cps}"


@dataclass(frozen=True)
class Fire:
    """A FIRE the scenario sent."""

    command_id: int
    valve: int
    open_count: int
    close_count: int
    t_send_us: float
    seq: int


def _heartbeats(s: Script, t_from_us: float, t_to_us: float) -> None:
    t = t_from_us
    k = 0
    while t < t_to_us:
        s.tx(t, b"\x00" + encode("HEARTBEAT", s.next_seq(), counter=k))
        t += HEARTBEAT_US
        k += 1


class ValvePicker:
    """Picks a valve that is not on in [open, close), so that every pin edge belongs to one command."""

    def __init__(self, valves: int = VALVES, guard: int = 5) -> None:
        self.busy: list[list[tuple[int, int]]] = [[] for _ in range(valves)]
        self.guard = guard
        self._next = 0

    def pick(self, open_count: int, close_count: int) -> int:
        n = len(self.busy)
        for k in range(n):
            v = (self._next + k) % n
            if all(close_count + self.guard <= o or open_count >= c + self.guard for o, c in self.busy[v]):
                self.busy[v].append((open_count, close_count))
                self._next = v + 1
                return v
        raise RuntimeError("no free valve: space the commands out")


# ---------------------------------------------------------------------------- opening precision


@dataclass
class PrecisionResult:
    sent: int = 0
    accepted: int = 0
    fired: int = 0
    open_errors: Counter[int] = field(default_factory=Counter)  #: counts: pin edge count - commanded open
    close_errors: Counter[int] = field(default_factory=Counter)
    latencies_us: list[float] = field(default_factory=list)  #: compare match -> pin edge, opening edges
    switched_without_match: int = 0  #: edges the firmware switched in software (a missed compare)
    report_mismatch: int = 0  #: FIRED counts differ from the pin edges
    count_mismatch: int = 0  #: the MCU's count differs from the belt's at an edge
    unexplained_edges: int = 0

    def within(self, counts: int) -> float:
        n = sum(self.open_errors.values())
        return sum(v for k, v in self.open_errors.items() if abs(k) <= counts) / n if n else 0.0


def precision_script(epoch: int, n: int, speed_cps: float = 25_000, spacing_us: float = 4000,
                     lead_ms: tuple[float, float] = (5, 45), width_counts: tuple[int, int] = (30, 200),
                     seed: int = 1) -> tuple[Script, list[Fire], float]:
    """``n`` FIREs, one per ``spacing_us``, opening 5-45 ms ahead (so they arrive out of position order)."""
    rng = random.Random(seed)
    s = Script()
    s.send(20_000, "ARM", session_id=SESSION)
    picker = ValvePicker()
    fires: list[Fire] = []
    t0 = BELT_START_S * 1e6 + 20_000
    end = t0
    for k in range(n):
        t = t0 + k * spacing_us
        lead = round(rng.uniform(*lead_ms) * 1e-3 * speed_cps)
        width = rng.randint(*width_counts)
        open_count = count_at(t, speed_cps) + lead
        close_count = open_count + width
        valve = picker.pick(open_count, close_count)
        seq = s.send(t, "FIRE", command_id=k + 1, valve_first=valve, valve_last=valve, open_count=open_count,
                     close_count=close_count, epoch=epoch)
        fires.append(Fire(k + 1, valve, open_count, close_count, t, seq))
        end = max(end, BELT_START_S * 1e6 + close_count / speed_cps * 1e6)
    end += 30_000
    _heartbeats(s, 30_000, end)
    s.tx(end - 5_000, b"\x00" + encode("STATUS_REQUEST", s.next_seq()))
    return s, fires, end


def _answers_to(events: list[dict[str, Any]], fires: list[Fire]) -> dict[int, Frame]:
    """The ACK or NAK of each FIRE (by command id): the first answer naming its sequence number after the firmware
    read it (sequence numbers wrap after 65535 frames, so the match is by time, not by number alone)."""
    read_at: dict[tuple[int, int], float] = {}
    for e, f in frames(events, "rx"):
        if isinstance(f, Frame) and f.name == "FIRE":
            read_at.setdefault((f["command_id"], f["open_count"]), e["t_us"])
    answers: dict[int, list[tuple[float, Frame]]] = {}
    for e, f in frames(events, "tx"):
        if isinstance(f, Frame) and f.name in ("ACK", "NAK"):
            answers.setdefault(f["acked_seq"], []).append((e["t_us"], f))
    out: dict[int, Frame] = {}
    for c in fires:
        t = read_at.get((c.command_id, c.open_count))
        if t is not None:
            later = [a for when, a in answers.get(c.seq, []) if when >= t]
            if later:
                out[c.command_id] = later[0]
    return out


def analyse_fires(events: list[dict[str, Any]], fires: list[Fire]) -> PrecisionResult:
    r = PrecisionResult(sent=len(fires))
    answers = _answers_to(events, fires)
    fired: dict[int, Frame] = {}
    for _e, f in frames(events, "tx"):
        if isinstance(f, Frame) and f.name == "FIRED":
            fired[f["command_id"]] = f
    edges: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        if e.get("ev") == "valve":
            edges.setdefault(int(e["valve"]), []).append(e)
            if e["count"] != e["belt"]:
                r.count_mismatch += 1
    used = 0
    for c in fires:
        a = answers.get(c.command_id)
        if a is None or a.name != "ACK" or a["result"] != ACK_QUEUED:
            continue
        r.accepted += 1
        on = [e for e in edges.get(c.valve, []) if e["on"] == 1 and c.open_count - 3 <= e["count"] <= c.close_count]
        off = [e for e in edges.get(c.valve, []) if e["on"] == 0 and c.open_count < e["count"] <= c.close_count + 3]
        if not on or not off:
            continue
        used += 2
        r.open_errors[on[0]["count"] - c.open_count] += 1
        r.close_errors[off[0]["count"] - c.close_count] += 1
        if on[0]["cmp_count"] == on[0]["count"]:
            r.latencies_us.append((on[0]["cycle"] - on[0]["cmp_cycle"]) * 1e6 / F_CPU_HZ)
        else:
            r.switched_without_match += 1
        rep = fired.get(c.command_id)
        if rep is not None:
            r.fired += 1
            if rep["open_count"] != on[0]["count"] or rep["close_count"] != off[0]["count"]:
                r.report_mismatch += 1
    r.unexplained_edges = sum(len(v) for v in edges.values()) - used
    return r


def run_precision(b: Build, workdir: Path, epoch: int, n: int, speed_cps: float = 25_000,
                  seed: int = 1) -> tuple[PrecisionResult, list[dict[str, Any]]]:
    s, fires, end = precision_script(epoch, n, speed_cps=speed_cps, seed=seed)
    events = run_script(b, workdir, s, profile(speed_cps), duration_s=end / 1e6)
    return analyse_fires(events, fires), events


# ---------------------------------------------------------------------------- watchdog


@dataclass(frozen=True)
class WatchdogTrial:
    last_heartbeat_us: float  #: when the firmware read the last byte of the last HEARTBEAT
    close_edge_us: float  #: when the open valve's pin went low
    fault_sent: bool

    @property
    def delay_ms(self) -> float:
        return (self.close_edge_us - self.last_heartbeat_us) / 1e3


def watchdog_script(epoch: int, trials: int, speed_cps: float = 25_000,
                    seed: int = 2) -> tuple[Script, list[Fire], float]:
    """Per trial: ARM, heartbeats, a long pulse opens, the heartbeats stop at a random phase."""
    rng = random.Random(seed)
    s = Script()
    fires: list[Fire] = []
    t = BELT_START_S * 1e6 + 20_000
    for k in range(trials):
        s.tx(t, b"\x00" + encode("ARM", s.next_seq(), session_id=SESSION))
        open_count = count_at(t + 110_000, speed_cps)
        close_count = open_count + round(0.12 * speed_cps)  # 120 ms, below the 200 ms clamp
        seq = s.send(t + 2_000, "FIRE", command_id=k + 1, valve_first=k % VALVES, valve_last=k % VALVES,
                     open_count=open_count, close_count=close_count, epoch=epoch)
        fires.append(Fire(k + 1, k % VALVES, open_count, close_count, t + 2_000, seq))
        stop = t + 100_000 + rng.uniform(0, 19_000)
        hb = t + 5_000
        while hb < stop:
            s.tx(hb, b"\x00" + encode("HEARTBEAT", s.next_seq(), counter=k))
            hb += HEARTBEAT_US
        t += 400_000
    return s, fires, t


def analyse_watchdog(events: list[dict[str, Any]], fires: list[Fire]) -> list[WatchdogTrial]:
    heartbeats = [e["t_us"] for e, f in frames(events, "rx") if isinstance(f, Frame) and f.name == "HEARTBEAT"]
    faults = [e["t_us"] for e, f in frames(events, "tx")
              if isinstance(f, Frame) and f.name == "FAULT" and f["fault_code"] == FAULT_WATCHDOG]
    out = []
    for c in fires:
        off = [e for e in events if e.get("ev") == "valve" and e["valve"] == c.valve and e["on"] == 0
               and e["t_us"] > c.t_send_us]
        if not off:
            continue
        edge = off[0]["t_us"]
        last = max((h for h in heartbeats if h < edge), default=math.nan)
        out.append(WatchdogTrial(last, edge, any(0 <= f - edge < 5_000 for f in faults)))
    return out


# ---------------------------------------------------------------------------- command-to-position budget


@dataclass(frozen=True)
class LeadProbe:
    lead_counts: int  #: open position - count when the frame's first byte arrived
    accepted: bool
    open_error: int | None  #: pin edge count - open, when accepted
    processing_us: float | None  #: last byte of the FIRE read -> first byte of its answer


def lead_script(epoch: int, leads: list[int], speed_cps: float = 25_000) -> tuple[Script, list[Fire], float]:
    """One FIRE per lead (in counts), every 7.3 ms (so that they meet the firmware's periodic work at varied
    phases), each arriving on an encoder edge so that "the count when it arrived" is exact."""
    s = Script()
    s.send(20_000, "ARM", session_id=SESSION)
    fires = []
    t = BELT_START_S * 1e6 + 20_000
    for k, lead in enumerate(leads):
        # the first byte starts on an encoder edge, so "count when it arrived" is exact
        n0 = count_at(t, speed_cps) + 1
        t_edge = (BELT_START_S + n0 / speed_cps) * 1e6 + 1
        valve = k % VALVES
        seq = s.send(t_edge, "FIRE", command_id=k + 1, valve_first=valve, valve_last=valve,
                     open_count=n0 + lead, close_count=n0 + lead + 50, epoch=epoch)
        fires.append(Fire(k + 1, valve, n0 + lead, n0 + lead + 50, t_edge, seq))
        t += 7_300
    _heartbeats(s, 30_000, t + 20_000)
    return s, fires, t + 20_000


def analyse_lead(events: list[dict[str, Any]], fires: list[Fire], leads: list[int]) -> list[LeadProbe]:
    rx_end = {f.seq: e["t_us"] for e, f in frames(events, "rx") if isinstance(f, Frame) and f.name == "FIRE"}
    answers = {f["acked_seq"]: (e, f) for e, f in frames(events, "tx") if isinstance(f, Frame) and f.name in ("ACK", "NAK")}
    out = []
    for c, lead in zip(fires, leads, strict=True):
        e, a = answers.get(c.seq, (None, None))
        accepted = a is not None and a.name == "ACK" and a["result"] == ACK_QUEUED
        err = None
        if accepted:
            on = [v for v in events if v.get("ev") == "valve" and v["valve"] == c.valve and v["on"] == 1
                  and c.open_count - 3 <= v["count"] <= c.close_count]
            err = on[0]["count"] - c.open_count if on else None
        proc = e["t0_us"] - rx_end[c.seq] if e is not None and c.seq in rx_end else None
        out.append(LeadProbe(lead, accepted, err, proc))
    return out


# ---------------------------------------------------------------------------- fuzzing


HOST_TYPES = {t for t in MESSAGES if t < 0x80}
HOST_NAMES = {MESSAGES[t][0] for t in HOST_TYPES}
MAX_ENCODED = 70  #: longest COBS block a receiver keeps (a 64-byte payload); more is discarded as oversize
BYTE_US = 11.0  #: simavr's USART takes 11 bit times per byte (it counts a parity bit even without parity)


def classify_stream(stream: bytes) -> Counter[str]:
    """What the firmware's receiver makes of a byte stream (PROTOCOL.md section 2.2): good host frames by name,
    and "bad" for each frame it counts in bad_frames."""
    out: Counter[str] = Counter()
    buf = bytearray()
    oversize = False
    for b in stream:
        if b:
            if oversize:
                continue
            if len(buf) >= MAX_ENCODED:
                oversize = True
                buf.clear()
            else:
                buf.append(b)
            continue
        if oversize:
            out["bad"] += 1
            oversize = False
        elif buf:
            f = decode_block(bytes(buf))
            out[f.name if isinstance(f, Frame) and f.name in HOST_NAMES else "bad"] += 1
        buf.clear()
    return out


def _garbage(rng: random.Random, epoch: int, seq: int) -> bytes:
    """One fuzzed item: damaged, unknown, wrong-length or refused frames, or noise."""
    kind = rng.randrange(9)
    if kind == 0:  # noise, may contain delimiters
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 100)))
    if kind == 1:  # noise without delimiters, often oversize
        return bytes(rng.randint(1, 255) for _ in range(rng.randint(60, 300)))
    if kind == 2:  # valid CRC, unknown or controller-to-host type, random payload
        t = rng.choice([x for x in range(256) if x not in HOST_TYPES])
        return encode_raw(t, seq, bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
    if kind == 3:  # valid CRC, host type, wrong payload length
        t = rng.choice(sorted(HOST_TYPES))
        n = MESSAGES[t][1].size
        length = rng.choice([k for k in range(0, 65) if k != n])
        return encode_raw(t, seq, bytes(rng.randrange(256) for _ in range(length)))
    if kind == 4:  # a good frame truncated
        good = encode("FIRE", seq, command_id=rng.randrange(1 << 32), valve_first=1, valve_last=2, open_count=10,
                      close_count=20, epoch=epoch)
        return good[: rng.randint(1, len(good) - 2)] + b"\x00"
    if kind == 5:  # a good frame with one bit flipped (CRC or COBS error)
        flipped = bytearray(encode("PING", seq, host_time_ns=rng.randrange(1 << 64)))
        i = rng.randrange(len(flipped) - 1)
        flipped[i] ^= 1 << rng.randrange(8)
        if flipped[i] == 0:
            flipped[i] = 0x55
        return bytes(flipped)
    if kind == 6:  # well-formed FIRE of another epoch: refused WRONG_EPOCH
        return encode("FIRE", seq, command_id=rng.randrange(1 << 31, 1 << 32), valve_first=0, valve_last=31,
                      open_count=rng.randrange(1 << 40), close_count=(1 << 40) + 1,
                      epoch=(epoch + rng.randint(1, 0xFFFE)) % 0x10000 or 1)
    if kind == 7:  # well-formed FIRE of this epoch with bad fields: refused BAD_FIELD
        return encode("FIRE", seq, command_id=rng.randrange(1 << 31, 1 << 32), valve_first=rng.choice([5, 40]),
                      valve_last=rng.choice([2, 32, 65535]), open_count=500_000, close_count=400_000, epoch=epoch)
    return encode(rng.choice(["PING", "STATUS_REQUEST", "CANCEL", "PICK"]) if rng.random() < 0.5 else "PING", seq,
                  **_fields_for(rng, epoch))


def _fields_for(rng: random.Random, epoch: int) -> dict[str, int]:
    return {"host_time_ns": rng.randrange(1 << 64), "command_id": rng.randrange(1 << 31, 1 << 32),
            "x_um": 0, "y_um": 0, "pick_count": 1, "epoch": epoch}


@dataclass
class FuzzPlan:
    script: Script
    fires: list[Fire]  #: the good commands mixed into the garbage
    expected: Counter[str]  #: what the receiver must make of the stream ("bad" = bad_frames)
    items: int
    end_us: float


def fuzz_plan(epoch: int, items: int, speed_cps: float = 25_000, seed: int = 3, fire_every: int = 40) -> FuzzPlan:
    """``items`` fuzzed frames through the UART, paced so the link is never saturated, with a heartbeat every
    20 ms and a good FIRE every ``fire_every`` items (each of those after a 0x00, as a resynchronising host would
    send them)."""
    rng = random.Random(seed)
    s = Script()
    stream = bytearray()
    fires: list[Fire] = []
    picker = ValvePicker()

    def put(t_us: float, data: bytes) -> float:
        s.tx(t_us, data)
        stream.extend(data)
        return t_us + (len(data) + 20) * BYTE_US * 2

    t = put(20_000, b"\x00" + encode("ARM", s.next_seq(), session_id=SESSION))
    t = max(t, BELT_START_S * 1e6 + 10_000)
    next_hb = t
    last_close = 0
    for k in range(items):
        if t >= next_hb:
            t = put(t, b"\x00" + encode("HEARTBEAT", s.next_seq(), counter=k))
            next_hb += HEARTBEAT_US
        if k % fire_every == fire_every - 1:
            open_count = count_at(t, speed_cps) + round(0.03 * speed_cps)
            close_count = open_count + rng.randint(30, 150)
            valve = picker.pick(open_count, close_count)
            seq = s.next_seq()
            fires.append(Fire(len(fires) + 1, valve, open_count, close_count, t, seq))
            last_close = max(last_close, close_count)
            t = put(t, b"\x00" + encode("FIRE", seq, command_id=len(fires), valve_first=valve, valve_last=valve,
                                        open_count=open_count, close_count=close_count, epoch=epoch))
        else:
            t = put(t, _garbage(rng, epoch, s.next_seq()))
    end = max(t, BELT_START_S * 1e6 + last_close / speed_cps * 1e6) + 30_000
    while next_hb < end:
        t = put(max(t, next_hb), b"\x00" + encode("HEARTBEAT", s.next_seq(), counter=0))
        next_hb += HEARTBEAT_US
    put(max(t, end - 10_000), b"\x00" + encode("STATUS_REQUEST", s.next_seq()))
    expected = classify_stream(bytes(stream))
    if expected["ARM"] != 1 or expected["DISARM"] or expected["FIRE"] != len(fires) + _refused_fires(stream, epoch):
        raise RuntimeError(f"seed {seed} made a well-formed command by accident: use another seed")
    return FuzzPlan(s, fires, expected, items, max(t, end) + 5_000)


def _refused_fires(stream: bytearray, epoch: int) -> int:
    """Well-formed FIREs in the stream that the firmware must refuse (other epoch or bad fields)."""
    n = 0
    for block in bytes(stream).split(b"\x00"):
        f = decode_block(block) if block and len(block) <= MAX_ENCODED else None
        if isinstance(f, Frame) and f.name == "FIRE":
            good_fields = f["valve_first"] <= f["valve_last"] < VALVES and f["close_count"] > f["open_count"]
            if f["epoch"] != epoch or not good_fields:
                n += 1
    return n


@dataclass
class FuzzResult:
    resets: int
    crashed: bool
    boot_id: int | None
    bad_frames: int | None
    fires: PrecisionResult
    tx_frames: Counter[str]


def analyse_fuzz(events: list[dict[str, Any]], plan: FuzzPlan) -> FuzzResult:
    status = [f for _e, f in frames(events, "tx") if isinstance(f, Frame) and f.name == "STATUS"]
    tx: Counter[str] = Counter()
    for _e, f in frames(events, "tx"):
        tx[f.name if isinstance(f, Frame) else f"bad:{f}"] += 1
    summary = next(e for e in events if e.get("ev") == "summary")
    return FuzzResult(
        resets=int(summary["resets"]),
        crashed=any(e.get("ev") == "crash" for e in events),
        boot_id=status[-1]["boot_id"] if status else None,
        bad_frames=status[-1]["bad_frames"] if status else None,
        fires=analyse_fires(events, plan.fires),
        tx_frames=tx,
    )


def run_fuzz(b: Build, workdir: Path, epoch: int, items: int, seed: int = 3) -> tuple[FuzzPlan, FuzzResult]:
    plan = fuzz_plan(epoch, items, seed=seed)
    events = run_script(b, workdir, plan.script, profile(25_000), duration_s=plan.end_us / 1e6)
    return plan, analyse_fuzz(events, plan)


def run_watchdog(b: Build, workdir: Path, epoch: int, trials: int) -> list[WatchdogTrial]:
    s, fires, end = watchdog_script(epoch, trials)
    events = run_script(b, workdir, s, profile(25_000), duration_s=end / 1e6)
    return analyse_watchdog(events, fires)


def lead_budget(probes: list[LeadProbe]) -> int | None:
    """Smallest lead (counts) from which every probe was accepted and opened exactly, or None."""
    bad = [p.lead_counts for p in probes if not p.accepted or p.open_error != 0]
    good = sorted({p.lead_counts for p in probes if p.lead_counts > max(bad, default=-1)})
    return good[0] if good else None


def run_lead(b: Build, workdir: Path, epoch: int, leads: list[int]) -> list[LeadProbe]:
    s, fires, end = lead_script(epoch, leads)
    events = run_script(b, workdir, s, profile(25_000), duration_s=end / 1e6)
    return analyse_lead(events, fires, leads)
