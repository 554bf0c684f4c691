"""``skbsim validate --tcp``: the TCP receive model against the kernel running on this machine.

Each scenario (a list of steps in the language of skbsim.tcp_steps, with
its SO_RCVBUF, SYN options and congestion control) is played twice: by the
live peer of skbsim.live.tcp_peer against a socket of the running kernel
behind a tap, and by the model, ``tcp_session.play("host", "tun", {"write":
"block"}, ...)``.  Both give records of the same shape (docs/tcp.md); every
field of every record is compared, and the SYN-ACK too.

The built-in set (:data:`BUILTIN`) is chosen so that together its scenarios
move every field: the handshake with and without window scaling and
timestamps; the fast path and the slow path; forward allocation and the
fast path's overshoot of sk_rcvbuf; prune, collapse and coalescing into the
collapsed skb; drops for memory and for a zero window, the zero-window
advertisements and the out-of-order queue behind a hole; fat skbs (a 127000-
byte buffer for 100 or 1000 bytes of payload) and right-sized ones, with and
without a reader after every segment (autotuning); read:B and wait:MS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from skbsim.errors import InputError
from skbsim.tcp_session import COUNTERS, INFO_KEYS, MEM_KEYS, STEP_MS
from skbsim.tcp_steps import DEFAULT_SYN, Step, SynOptions, parse_steps, parse_syn

MODEL_KERNEL = "host"
MODEL_DRIVER = "tun"
MODEL_OPTIONS = {"write": "block"}
#: A live run whose events came later than this behind their schedule (the machine stalled the
#: peer) is played again, up to LIVE_ATTEMPTS times in all: 0.9 ms is where an event at a whole
#: millisecond could reach the next jiffies tick or millisecond (docs/validate-tcp.md, "Timing").
LATE_LIMIT_US = 900
LIVE_ATTEMPTS = 3


class Scenario:
    """A named list of steps with the socket's and the peer's settings."""

    __slots__ = ("name", "text", "so_rcvbuf", "syn", "cc", "step_ms", "about")

    def __init__(self, name: str, text: str, *, so_rcvbuf: int | None = None, syn: str | None = None,
                 cc: str = "cubic", step_ms: int = STEP_MS, about: str = "") -> None:
        self.name = name
        self.text = text
        self.so_rcvbuf = so_rcvbuf
        self.syn = syn
        self.cc = cc
        self.step_ms = step_ms
        self.about = about

    @property
    def steps(self) -> list[Step]:
        return parse_steps(self.text.split())

    @property
    def syn_options(self) -> SynOptions:
        return parse_syn(self.syn) if self.syn else DEFAULT_SYN

    def as_dict(self) -> dict:
        return {"name": self.name, "steps": self.text, "so_rcvbuf": self.so_rcvbuf,
                "syn": self.syn_options.text(), "cc": self.cc, "step_ms": self.step_ms}


#: The built-in scenarios; together they move every field of the records that a peer outside the
#: kernel can move (docs/validate-tcp.md lists what each one shows, and the few it cannot).
BUILTIN: tuple[Scenario, ...] = (
    Scenario("full-size", "send:1460x3 read",
             about="three full-size segments and a read: the handshake, quick ACKs, slow then fast path"),
    Scenario("full-size-ts", "send:1448x3 read:2000 wait:100 read", syn="ts=1,sack=1",
             about="the same with timestamps and SACK (32-byte headers), a partial read and a wait"),
    Scenario("no-wscale", "send:1000x4 read", syn="wscale=none",
             about="a peer without window scaling: no scaling on either side"),
    Scenario("rcvbuf-8192", "send:100x40 read", so_rcvbuf=8192,
             about="40 x 100 bytes against SO_RCVBUF 8192: forward allocation, the fast path's overshoot of "
                   "sk_rcvbuf, prune and collapse, coalescing into the collapsed skb"),
    Scenario("ofo", "send:1000x8 read send:1000x3 read", so_rcvbuf=8192,
             about="a segment past the offered window is dropped; after a read the next ones queue out of "
                   "order behind the hole"),
    Scenario("ofo-collapse", "send:1000x8 read send:100x100 read", so_rcvbuf=8192,
             about="100-byte segments behind a hole: out-of-order coalescing, then prune collapsing the "
                   "out-of-order queue"),
    Scenario("zero-window", "send:1460x2 read send:1000 read", so_rcvbuf=2048,
             about="one segment shuts the window (TCPToZeroWindowAdv), the next is dropped, a read opens it "
                   "again (TCPFromZeroWindowAdv), a segment past its edge is dropped"),
    Scenario("proto-mem", "send:1000x4@127000 read send:1000x3", so_rcvbuf=8192,
             about="fat skbs against SO_RCVBUF 8192: prune fails (RcvPruned), the segment is dropped for "
                   "memory (PROTO_MEM, TCPRcvQDrop), the ones after it fall outside the window"),
    Scenario("fat-100", "send:100x20@127000",
             about="100 bytes in 127000-byte buffers, no reader"),
    Scenario("fat-1000", "send:1000x20@127000",
             about="1000 bytes in 127000-byte buffers, no reader: scaling_ratio falls to 1, window_clamp to "
                   "its floor"),
    Scenario("right-100", "send:100x20", about="the traffic of fat-100 right-sized"),
    Scenario("right-1000", "send:1000x20", about="the traffic of fat-1000 right-sized"),
    Scenario("autotune-fat", "readeach send:1000x90@127000",
             about="90 x 1000 bytes in 127000-byte buffers, read after each: autotuning (sk_rcvbuf to tcp_rmem[2])"),
    Scenario("autotune", "readeach send:1000x90",
             about="90 x 1000 bytes right-sized, read after each: autotuning"),
    Scenario("autotune-ts", "readeach send:1448x300", syn="ts=1", step_ms=50,
             about="300 full-size segments with timestamps, read after each: the receive RTT from TSecr"),
)


def scenarios_from_args(texts: Sequence[str], *, so_rcvbuf: int | None = None, syn: str | None = None,
                        cc: str = "cubic", step_ms: int = STEP_MS) -> list[Scenario]:
    """Built-in names or step lists ("send:1448x3 read"); none given: the built-in set.
    Anything that is not a built-in name is read as steps (so a typo is a step error).

    The socket and peer options apply to the step lists given (built-ins keep their own).
    """
    if not texts:
        return list(BUILTIN)
    if syn is not None:
        parse_syn(syn)  # bad --syn is an input error before anything runs
    names = {scenario.name for scenario in BUILTIN}
    chosen = []
    for n, text in enumerate(texts):
        if text.strip() in names:
            chosen.append(next(s for s in BUILTIN if s.name == text.strip()))
        else:
            scenario = Scenario(f"scenario-{n + 1}", " ".join(text.split()), so_rcvbuf=so_rcvbuf, syn=syn, cc=cc,
                                step_ms=step_ms)
            steps = scenario.steps
            held = [s.action for s in steps if s.action in ("hold", "release")]
            if held:
                raise InputError(f"scenario {text!r}: {held[0]!r} cannot be played on the live kernel (a "
                                 "user-space peer cannot hold the socket's lock; the model's tests cover it)")
            chosen.append(scenario)
    return chosen


# -- the two sides ----------------------------------------------------------------------------------


def play_live(scenario: Scenario, btf=None):
    """The scenario against the running kernel: a skbsim.live.tcp_peer.LiveRun."""
    from skbsim.live.tcp_peer import run_scenario

    return run_scenario(scenario.steps, so_rcvbuf=scenario.so_rcvbuf, cc=scenario.cc, syn=scenario.syn_options,
                        step_ms=scenario.step_ms, btf=btf)


def play_model(scenario: Scenario, kernel: str = MODEL_KERNEL) -> dict:
    """The scenario in the model, as the live kernel runs it: tun with blocking writes (on the host
    profile unless another *kernel* is asked for)."""
    from skbsim.tcp_session import play

    try:
        return play(kernel, MODEL_DRIVER, dict(MODEL_OPTIONS), scenario.steps, so_rcvbuf=scenario.so_rcvbuf,
                    cc=scenario.cc, syn=scenario.syn_options, step_ms=scenario.step_ms)
    except NotImplementedError as exc:
        raise InputError(f"the TCP model cannot play yet ({exc}); use --live-only") from None


# -- comparing --------------------------------------------------------------------------------------

#: Fields compared in every record, in the order the agreement table lists them.
RECORD_FIELDS = (("action", "payload", "frame_len", "truesize", "route", "verdict", "acks")
                 + tuple(f"mem.{key}" for key in MEM_KEYS) + tuple(f"info.{key}" for key in INFO_KEYS)
                 + tuple(f"counters.{key}" for key in COUNTERS))
SYNACK_FIELDS = ("synack.win", "synack.wscale", "synack.mss")


class Disagreement:
    __slots__ = ("scenario", "i", "action", "field", "live", "model")

    def __init__(self, scenario: str, i: int | None, action: str | None, field: str, live: object,
                 model: object) -> None:
        self.scenario = scenario
        self.i = i
        self.action = action
        self.field = field
        self.live = live
        self.model = model

    def as_dict(self) -> dict:
        return {"scenario": self.scenario, "i": self.i, "action": self.action, "field": self.field,
                "live": self.live, "model": self.model}


def _value(record: dict, field: str) -> object:
    head, _, tail = field.partition(".")
    value = record.get(head)
    if tail:
        value = value.get(tail) if isinstance(value, dict) else None
    return value


def compare(name: str, live: dict, model: dict, tally: dict[str, list[int]]) -> list[Disagreement]:
    """Every field of the SYN-ACK and of every record; *tally* counts [agree, disagree] per field."""
    found: list[Disagreement] = []

    def check(field: str, i: int | None, action: str | None, live_value: object, model_value: object) -> None:
        counts = tally.setdefault(field, [0, 0])
        if live_value == model_value:
            counts[0] += 1
        else:
            counts[1] += 1
            found.append(Disagreement(name, i, action, field, live_value, model_value))

    for field in SYNACK_FIELDS:
        key = field.split(".", 1)[1]
        check(field, None, None, live["synack"].get(key), model["synack"].get(key))
    live_steps, model_steps = live["steps"], model["steps"]
    check("records", None, None, len(live_steps), len(model_steps))
    for live_record, model_record in zip(live_steps, model_steps):
        for field in RECORD_FIELDS:
            check(field, live_record["i"], live_record["action"], _value(live_record, field),
                  _value(model_record, field))
    return found


def requirements() -> list[str]:
    """What this machine lacks for the live TCP peer (empty when nothing)."""
    from skbsim.live.tcp_peer import requirements_missing

    return requirements_missing()


def validate_tcp(scenarios: Iterable[Scenario], *, kernel: str = MODEL_KERNEL, live_only: bool = False,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Play each scenario live (and in the model unless *live_only*); a plain dict, ``ok`` False on
    any disagreement."""
    missing = requirements()
    if missing:
        raise InputError("validate --tcp needs " + "; ".join(missing))
    from skbsim.live.btf import BtfFile

    btf = BtfFile()
    scenarios = list(scenarios)
    results = []
    disagreements: list[Disagreement] = []
    tally: dict[str, list[int]] = {}
    for scenario in scenarios:
        if progress:
            progress(f"{scenario.name}: {scenario.text}")
        started = time.perf_counter()
        for attempt in range(1, LIVE_ATTEMPTS + 1):
            run = play_live(scenario, btf)
            max_late_us = max((t["late_us"] for t in run.timeline), default=0)
            if max_late_us <= LATE_LIMIT_US:
                break
            if progress:
                progress(f"{scenario.name}: an event came {max_late_us} us late; playing it again")
        seconds = time.perf_counter() - started
        entry = {"scenario": scenario.as_dict(), "seconds": round(seconds, 3), "attempts": attempt,
                 "max_late_us": max_late_us, **run.as_dict()}
        if not live_only:
            model = play_model(scenario, kernel)
            found = compare(scenario.name, run.result, model, tally)
            disagreements += found
            entry["model"] = model
            entry["disagreements"] = len(found)
        results.append(entry)
    fields = [{"field": field, "agree": counts[0], "disagree": counts[1]} for field, counts in tally.items()]
    return {
        "kernel": kernel, "driver": MODEL_DRIVER, "options": dict(MODEL_OPTIONS), "live_only": live_only,
        "scenarios": results,
        "fields": fields,
        "disagreements": [d.as_dict() for d in disagreements],
        "ok": live_only or not disagreements,
    }
