"""TickDMA against an AXI4 memory model written here (random AWREADY/WREADY/BVALID stalls).

Every simulation checks, at every write, that the write lands inside
``[base, base + nslots*64)`` or is the 8-byte shadow-head word (the model refuses
any other address), that bursts are well formed and that AXI payloads stay
stable while waiting; at the end it checks the whole ring log against the ticks
offered: gap-free ``seq``, slot addresses, lap tags, bodies, and that every tick
offered is either in the ring or counted by a drop event.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from amaranth.sim import Simulator

from wiretick.hdl.axi import BURST_INCR, RESP_OKAY, RESP_SLVERR
from wiretick.hdl.dma import DMAState, TickDMA
from wiretick.host.contract.formats import Flag

SLOT = 64
_FLAGS_OFF = 60
_LAP_MASK = 0xF << (8 * _FLAGS_OFF + 12)       # lap-tag bits in a tick as an int
_SEQ_MASK = (1 << 64) - 1


def _body(tick: int) -> int:
    """The bits of a tick the engine keeps (not seq, not the lap tag)."""
    return tick & ~_SEQ_MASK & ~_LAP_MASK & ((1 << 512) - 1)


def _random_tick(rng: random.Random) -> int:
    """Random bytes everywhere (seq and lap-tag bits too: the engine must overwrite them),
    except EVENT_DROP, which only the engine sets; one in eight is a parser event
    (msg_type 0)."""
    t = rng.getrandbits(512) & ~(Flag.EVENT_DROP << (8 * _FLAGS_OFF))
    if rng.random() < 0.125:
        t &= ~(0xFF << (8 * 62))
    return t


@dataclass
class Config:
    data_width: int = 512
    fifo_depth: int = 16
    max_outstanding: int = 8
    max_log2_slots: int = 12
    base: int = 0x1_2345_6000
    log2: int = 4
    shadow: int = 0x1_2345_5040
    interval: int = 16
    # stimulus
    n_ticks: int = 200
    rate: float = 1.0              # probability of a tick per cycle
    aw_p: float = 1.0              # probability of AWREADY per cycle
    w_p: float = 1.0
    b_p: float = 1.0               # probability of BVALID once a response is due
    b_latency: tuple = (1, 4)
    err_p: float = 0.0             # probability of SLVERR on a response
    seed: int = 1
    gaps: list = field(default_factory=list)   # (after n offered ticks, idle cycles)
    stop_with_last: bool = False   # drop enable on the cycle of the last tick
    stall: tuple = (0, 0)          # (first cycle, cycles): AWREADY and WREADY held low
    max_cycles: int = 20_000


@dataclass
class Result:
    cfg: Config
    offered: list            # ticks (ints) offered while the engine was running
    ring_log: list           # (addr, bytes) of every ring write, in completion order
    shadow_log: list         # (cycle, value, ring_acks) of every shadow write
    memory: dict             # slot address -> 64 bytes
    cycles: int
    errors_sent: int
    head: int = 0
    dropped: int = 0
    drop_events: int = 0
    bus_errors: int = 0
    idle_marks: list = field(default_factory=list)   # (cycle, offered so far) when a gap began
    most_pending: int = 0


class AxiWriteMemory:
    """The AXI slave: AW and W queues, bursts matched in order, B after a random latency."""

    def __init__(self, cfg: Config, rng: random.Random):
        self.cfg = cfg
        self.rng = rng
        self.nslots = 1 << min(cfg.log2, cfg.max_log2_slots)
        self.lo = cfg.base
        self.hi = cfg.base + self.nslots * SLOT
        self.beat_bytes = cfg.data_width // 8
        self.aws: list = []          # accepted AW, waiting for data
        self.beats: list = []        # accepted W beats, waiting for their AW
        self.bq: list = []           # [due cycle, kind, resp]
        self.ring_log: list = []
        self.shadow_log: list = []
        self.memory: dict = {}
        self.ring_acks = 0
        self.errors_sent = 0
        self.most_pending = 0        # most writes seen waiting for their B response
        self.stall_aw = None         # AW payload offered but not accepted last cycle
        self.stall_w = None

    def check_aw(self, addr, alen, size, burst):
        assert burst == BURST_INCR, f"burst type {burst}"
        if addr == self.cfg.shadow:
            assert (alen, size) == (0, 3), f"shadow write with len {alen} size {size}"
            return "shadow"
        assert self.lo <= addr < self.hi, (
            f"write at {addr:#x} outside the ring [{self.lo:#x}, {self.hi:#x}) and not the shadow word")
        assert addr % SLOT == 0, f"ring write at {addr:#x} not 64-byte aligned"
        assert alen == SLOT // self.beat_bytes - 1 and (1 << size) == self.beat_bytes, (alen, size)
        assert addr + SLOT <= self.hi
        assert addr // 4096 == (addr + SLOT - 1) // 4096, "burst crosses 4 KiB"
        return "ring"

    def edge(self, now, s):
        """Handshakes that happened at this clock edge (``s``: sampled bus values)."""
        aw = (s["awaddr"], s["awlen"], s["awsize"], s["awburst"])
        if self.stall_aw is not None:
            assert s["awvalid"] and aw == self.stall_aw, "AW dropped or changed while waiting"
        self.stall_aw = aw if s["awvalid"] and not s["awready"] else None
        w = (s["wdata"], s["wstrb"], s["wlast"])
        if self.stall_w is not None:
            assert s["wvalid"] and w == self.stall_w, "W dropped or changed while waiting"
        self.stall_w = w if s["wvalid"] and not s["wready"] else None

        if s["awvalid"] and s["awready"]:
            kind = self.check_aw(*aw)
            self.aws.append((kind, *aw))
            # accepted writes without their B response yet, this one included
            pending_b = len(self.aws) + len(self.bq) - bool(s["bvalid"] and s["bready"])
            assert pending_b <= self.cfg.max_outstanding, f"{pending_b} writes outstanding"
            self.most_pending = max(self.most_pending, pending_b)
        if s["wvalid"] and s["wready"]:
            self.beats.append(w)
        if s["bvalid"] and s["bready"]:
            _, kind, resp = self.bq.pop(0)
            if kind == "ring":
                self.ring_acks += 1
        # Complete bursts whose AW and data are both in.
        while self.aws:
            kind, addr, alen, size, _ = self.aws[0]
            n = alen + 1
            if len(self.beats) < n:
                break
            del self.aws[0]
            beats, self.beats = self.beats[:n], self.beats[n:]
            assert [b[2] for b in beats] == [0] * (n - 1) + [1], "WLAST misplaced"
            if kind == "ring":
                assert all(b[1] == (1 << self.beat_bytes) - 1 for b in beats), "partial strobes"
                data = b"".join(b[0].to_bytes(self.beat_bytes, "little") for b in beats)
                self.memory[addr] = data
                self.ring_log.append((addr, data))
            else:
                lane = addr % self.beat_bytes
                ((wdata, strb, _),) = beats
                assert strb == 0xFF << lane, f"shadow strobes {strb:#x} for lane {lane}"
                value = (wdata >> (8 * lane)) & _SEQ_MASK
                self.shadow_log.append((now, value, self.ring_acks))
            resp = RESP_SLVERR if self.rng.random() < self.cfg.err_p else RESP_OKAY
            self.errors_sent += resp != RESP_OKAY
            self.bq.append([now + self.rng.randint(*self.cfg.b_latency), kind, resp])

    def drive(self, ctx, bus, now):
        rng = self.rng
        first, length = self.cfg.stall
        stalled = first <= now < first + length
        ctx.set(bus.awready, rng.random() < self.cfg.aw_p and not stalled)
        ctx.set(bus.wready, rng.random() < self.cfg.w_p and not stalled)
        if self.bq and self.bq[0][0] <= now and rng.random() < self.cfg.b_p:
            ctx.set(bus.bvalid, 1)
            ctx.set(bus.bresp, self.bq[0][2])
        else:
            ctx.set(bus.bvalid, 0)
            ctx.set(bus.bresp, 0)


_BUS_NAMES = ("awaddr", "awlen", "awsize", "awburst", "awvalid", "awready",
              "wdata", "wstrb", "wlast", "wvalid", "wready", "bresp", "bvalid", "bready")


def run_dma(cfg: Config, *, dut: TickDMA | None = None, runs: int = 1) -> list[Result]:
    """Simulate ``runs`` runs (enable ... disable, to OFF) of one engine; one Result each."""
    rng = random.Random(cfg.seed)
    if dut is None:
        dut = TickDMA(data_width=cfg.data_width, fifo_depth=cfg.fifo_depth,
                      max_outstanding=cfg.max_outstanding, max_log2_slots=cfg.max_log2_slots)
    bus = dut.bus
    results: list[Result] = []
    sampled = [getattr(bus, n) for n in _BUS_NAMES] + [dut.state, dut.i_ticks.valid,
                                                       dut.i_ticks.payload.as_value(), dut.i_ticks.ready]

    async def tb(ctx):
        now = 0
        for _ in range(runs):
            mem = AxiWriteMemory(cfg, rng)
            offered: list = []
            idle_marks: list = []
            gaps = dict(cfg.gaps)
            ctx.set(dut.ring_base, cfg.base)
            ctx.set(dut.ring_log2, cfg.log2)
            ctx.set(dut.shadow_addr, cfg.shadow)
            ctx.set(dut.shadow_interval, cfg.interval)
            ctx.set(dut.enable, 1)
            sent = 0                # ticks put on the input
            idle_left = 0
            start = now
            phase = "run"
            async for _clk, _rst, *vals in ctx.tick().sample(*sampled):
                now += 1
                assert now - start < cfg.max_cycles, "simulation did not finish"
                s = dict(zip(_BUS_NAMES, vals[:len(_BUS_NAMES)]))
                state, valid, payload, ready = vals[len(_BUS_NAMES):]
                assert ready, "the input stream was back-pressured"
                mem.edge(now, s)
                if valid and state == DMAState.RUN:
                    offered.append(payload)
                mem.drive(ctx, bus, now)
                ctx.set(dut.timestamp, now * 4)
                # stimulus for the next edge
                if phase == "run":
                    if state != DMAState.RUN:
                        ctx.set(dut.i_ticks.valid, 0)
                        continue
                    if idle_left:
                        idle_left -= 1
                        ctx.set(dut.i_ticks.valid, 0)
                    elif sent < cfg.n_ticks and rng.random() < cfg.rate:
                        ctx.set(dut.i_ticks.valid, 1)
                        ctx.set(dut.i_ticks.payload.as_value(), _random_tick(rng))
                        sent += 1
                        if sent >= cfg.n_ticks and cfg.stop_with_last:
                            ctx.set(dut.enable, 0)
                            phase = "drain"
                        if sent in gaps:
                            idle_left = gaps[sent]
                            idle_marks.append((now + 1, sent))
                    else:
                        ctx.set(dut.i_ticks.valid, 0)
                        if sent >= cfg.n_ticks:
                            ctx.set(dut.enable, 0)
                            phase = "drain"
                elif phase == "drain":
                    # keep offering junk: it must be ignored once the engine is not running
                    ctx.set(dut.i_ticks.valid, rng.random() < 0.5)
                    if state == DMAState.OFF:
                        ctx.set(dut.i_ticks.valid, 0)
                        break
            res = Result(cfg, offered, mem.ring_log, mem.shadow_log, mem.memory, now - start,
                         mem.errors_sent, idle_marks=idle_marks)
            res.most_pending = mem.most_pending
            res.head = ctx.get(dut.head)
            res.dropped = ctx.get(dut.dropped)
            res.drop_events = ctx.get(dut.drop_events)
            res.bus_errors = ctx.get(dut.bus_errors)
            assert not mem.aws and not mem.beats and not mem.bq, "writes left in flight at OFF"
            results.append(res)
            for _ in range(3):
                await ctx.tick()
                now += 1

    sim = Simulator(dut)
    sim.add_clock(4e-9)
    sim.add_testbench(tb)
    sim.run()
    return results


def check(res: Result) -> None:
    """The ring log against the offered ticks: every rule of docs/ring.md and the accounting."""
    cfg = res.cfg
    log2 = min(cfg.log2, cfg.max_log2_slots)
    mask = (1 << log2) - 1
    i = 0                   # next offered tick
    dropped = events = 0
    for n, (addr, data) in enumerate(res.ring_log, 1):
        t = int.from_bytes(data, "little")
        seq = t & _SEQ_MASK
        assert seq == n, f"ring write {n} carries seq {seq}"
        assert addr == cfg.base + ((seq - 1) & mask) * SLOT, f"seq {seq} at {addr:#x}"
        flags = int.from_bytes(data[60:62], "little")
        assert flags >> 12 == ((seq - 1) >> log2) & 0xF, f"seq {seq}: lap tag {flags >> 12}"
        if data[62] == 0 and flags & Flag.EVENT_DROP:
            k = int.from_bytes(data[40:48], "little")
            assert k > 0, "empty drop event"
            assert t & ~_SEQ_MASK & ~_LAP_MASK == (Flag.EVENT_DROP << (8 * 60)) | (k << (8 * 40)) | (
                int.from_bytes(data[8:16], "little") << 64), "drop event with stray fields"
            assert i + k <= len(res.offered), "drop event counts more ticks than were offered"
            i += k
            dropped += k
            events += 1
        else:
            assert i < len(res.offered), f"seq {seq}: more ticks in the ring than offered"
            assert _body(t) == _body(res.offered[i]), f"seq {seq}: body differs from offered tick {i}"
            i += 1
    assert i == len(res.offered), f"{len(res.offered) - i} offered ticks neither written nor counted"
    total = len(res.ring_log)
    assert (res.head, res.dropped, res.drop_events) == (total, dropped, events)
    assert res.bus_errors == res.errors_sent
    # final memory: each slot holds the last seq written there
    for slot in range(min(total, mask + 1)):
        last = max(s for s in range(slot + 1, total + 1, mask + 1))
        assert int.from_bytes(res.memory[cfg.base + slot * SLOT][:8], "little") == last
    # shadow head: monotonic, never ahead of the acknowledged slots, final = head
    prev = 0
    for _, value, acks in res.shadow_log:
        assert prev <= value <= acks, f"shadow {value} (previous {prev}, acknowledged {acks})"
        prev = value
    if total:
        assert res.shadow_log and res.shadow_log[-1][1] == total, "the last shadow head is not the head"


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("width", [64, 128, 256, 512])
def test_widths_with_stalls_and_wrap(width):
    # 8 slots, 150 ticks: 18 laps (the 4-bit lap tag wraps); the shadow word is in a
    # lane that is not lane 0 on wide buses.
    cfg = Config(data_width=width, log2=3, n_ticks=150, rate=0.3 if width > 128 else 0.08,
                 aw_p=0.7, w_p=0.7, b_p=0.6, b_latency=(1, 8), fifo_depth=32,
                 shadow=0x1_2345_5000 + 0x28, seed=width)
    (res,) = run_dma(cfg)
    check(res)
    assert res.dropped == 0
    assert len(res.ring_log) == 150


def test_full_rate_512_one_tick_per_cycle():
    cfg = Config(n_ticks=300, rate=1.0, interval=0, b_latency=(3, 3), max_outstanding=8, log2=6)
    (res,) = run_dma(cfg)
    check(res)
    assert res.dropped == 0 and len(res.ring_log) == 300
    # one cycle per tick plus start, pipeline, response latency and drain
    assert res.cycles < 300 + 30, res.cycles


def test_stalls_absorbed_by_fifo():
    # The bus stops for stretches; the FIFO (64) holds the backlog: nothing is lost.
    cfg = Config(n_ticks=400, rate=0.25, aw_p=0.35, w_p=0.35, fifo_depth=64, log2=5, seed=7)
    (res,) = run_dma(cfg)
    check(res)
    assert res.dropped == 0


@pytest.mark.parametrize("burst,drops", [(16, False), (40, True)])
def test_bus_stall_absorbed_up_to_fifo_depth(burst, drops):
    # The bus stops for 80 cycles while a burst arrives at one tick per cycle: the
    # engine holds fifo_depth ticks plus the one in its write register; a longer
    # burst loses its tail, counted exactly by one drop event.
    cfg = Config(n_ticks=burst, rate=1.0, fifo_depth=16, stall=(3, 80), log2=6, interval=0)
    (res,) = run_dma(cfg)
    check(res)
    if drops:
        assert res.drop_events == 1 and res.dropped == 40 - 17
    else:
        assert res.dropped == 0 and len(res.ring_log) == 16


@pytest.mark.parametrize("width,seed", [(512, 3), (64, 4)])
def test_overflow_is_counted_exactly(width, seed):
    # The input never stops and the bus is slow: ticks are dropped, every one counted,
    # and drop events carry the exact counts; gaps make drop-only entries too.
    cfg = Config(data_width=width, n_ticks=500, rate=1.0, aw_p=0.3, w_p=0.5, b_p=0.5,
                 fifo_depth=4, log2=5, seed=seed, gaps=[(120, 40), (300, 3)])
    (res,) = run_dma(cfg)
    check(res)
    assert res.dropped > 100 and res.drop_events > 5
    assert len(res.ring_log) - res.drop_events + res.dropped == len(res.offered) == 500


def test_shadow_interval():
    cfg = Config(n_ticks=400, rate=1.0, interval=16, fifo_depth=64, b_latency=(2, 2), log2=6)
    (res,) = run_dma(cfg)
    check(res)
    values = [v for _, v, _ in res.shadow_log]
    steps = [b - a for a, b in zip([0] + values, values)]
    # every step but the last (idle) is the interval plus the responses that landed
    # between the trigger and the load of the shadow write
    assert all(16 <= s <= 18 for s in steps[:-1]), steps
    assert len(values) >= 400 // 18


def test_shadow_when_idle():
    # A large interval: the shadow head is written only when the engine idles.
    cfg = Config(n_ticks=90, rate=1.0, interval=1000, log2=8, gaps=[(10, 60), (11, 60), (50, 60)],
                 b_latency=(5, 9))
    (res,) = run_dma(cfg)
    check(res)
    for mark, count in res.idle_marks:
        # within the idle period the shadow head catches up with every tick sent
        seen = [v for t, v, _ in res.shadow_log if mark < t <= mark + 40]
        assert seen and seen[-1] == count, (mark, count, res.shadow_log)


def test_interval_zero_writes_only_when_idle():
    cfg = Config(n_ticks=200, rate=1.0, interval=0, log2=8)
    (res,) = run_dma(cfg)
    check(res)
    assert [v for _, v, _ in res.shadow_log] == [200]


def test_bus_errors_counted():
    cfg = Config(n_ticks=100, rate=0.5, err_p=0.2, seed=11)
    (res,) = run_dma(cfg)
    check(res)
    assert res.bus_errors > 5


def test_restart_renumbers_from_one():
    cfg = Config(n_ticks=40, rate=0.7, log2=3, aw_p=0.8)
    results = run_dma(cfg, runs=3)
    for res in results:
        check(res)
        assert len(res.ring_log) == 40


def test_ring_log2_clamped():
    # 2**20 slots asked, 2**5 built: writes stay inside the 32-slot ring.
    cfg = Config(n_ticks=100, rate=0.5, log2=20, max_log2_slots=5)
    (res,) = run_dma(cfg)
    check(res)
    assert {a for a, _ in res.ring_log} == {cfg.base + 64 * i for i in range(32)}


@pytest.mark.parametrize("base,shadow,log2", [
    (0x1000 + 0x20, 0x40, 4),               # ring base not 64-byte aligned
    (0x1000, 0x44, 4),                      # shadow head not 8-byte aligned
    ((1 << 64) - 0x400, 0x40, 5),           # 32 slots at the top of memory would wrap
])
def test_misaligned_configuration_refused(base, shadow, log2):
    dut = TickDMA(data_width=128, fifo_depth=4, max_outstanding=2, max_log2_slots=8)

    async def tb(ctx):
        ctx.set(dut.ring_base, base)
        ctx.set(dut.shadow_addr, shadow)
        ctx.set(dut.ring_log2, log2)
        ctx.set(dut.enable, 1)
        ctx.set(dut.bus.awready, 1)
        ctx.set(dut.bus.wready, 1)
        for _ in range(30):
            ctx.set(dut.i_ticks.valid, 1)
            ctx.set(dut.i_ticks.payload.as_value(), 0x1234)
            await ctx.tick()
            assert not ctx.get(dut.bus.awvalid) and not ctx.get(dut.bus.wvalid)
        assert ctx.get(dut.state) == DMAState.ERROR
        ctx.set(dut.enable, 0)
        await ctx.tick().repeat(2)
        assert ctx.get(dut.state) == DMAState.OFF

    sim = Simulator(dut)
    sim.add_clock(4e-9)
    sim.add_testbench(tb)
    sim.run()


def test_stop_right_after_a_tick_loses_nothing():
    # enable falls with the last tick: it is still in the FIFO's pipeline when the
    # engine starts draining, and must be written before the engine stops.
    for n in (1, 2, 5):
        cfg = Config(n_ticks=n, rate=1.0, log2=3, seed=n, stop_with_last=True)
        for res in run_dma(cfg, runs=3):
            check(res)
            assert len(res.ring_log) == n


def test_full_rate_64_keeps_the_bus_busy():
    # A 64-bit bus (a 1G/10G host link) takes a tick in 8 beats: ticks offered one every
    # 8 cycles go out back to back, one W beat every cycle, nothing dropped.
    cfg = Config(data_width=64, n_ticks=100, rate=1.0, gaps=[(i, 7) for i in range(1, 100)], interval=0,
                 b_latency=(3, 3), log2=5, fifo_depth=4)
    (res,) = run_dma(cfg)
    check(res)
    assert res.dropped == 0 and len(res.ring_log) == 100
    assert res.cycles < 8 * 100 + 30, res.cycles


def test_queue_of_fewer_than_four_is_refused():
    with pytest.raises(ValueError, match="fifo_depth"):
        TickDMA(fifo_depth=3)


@pytest.mark.parametrize("outstanding", [1, 3])
def test_outstanding_writes_bounded(outstanding):
    # Slow responses: the engine stops loading writes at max_outstanding (the memory
    # model asserts it at every AW) and reaches it.
    cfg = Config(n_ticks=60, rate=0.5, max_outstanding=outstanding, b_latency=(10, 20), fifo_depth=64, log2=4)
    (res,) = run_dma(cfg)
    check(res)
    assert res.dropped == 0 and res.most_pending == outstanding
