"""The tick DMA engine: ticks into the host ring over an AXI4 write master.

:class:`TickDMA` implements the writer side of docs/ring.md in gateware.

Sequence numbers
----------------
The engine numbers what it writes.  Every slot it writes -- a parser tick or a
drop event of its own -- gets the next ``seq`` (1, 2, 3, ... from the start of a
run), so the ring is gap-free: ``seq`` n is always in slot ``(n - 1) & mask`` and
the shadow head equals the number of slots written.  The ``seq`` the parser put
in a tick is ignored (its bits are not even stored).  Ticks the engine has to
drop are reported by the drop event written in their place: ``msg_type`` 0,
``flags`` = ``EVENT_DROP``, ``ref2`` = how many *parser ticks* were dropped
just before it, ``ts_rx`` = the ``timestamp`` input when the event is written.
The count of every parser tick offered while running is therefore
``ticks in the ring that are not drop events + sum of ref2 over drop events``,
and ``dropped`` (the register) equals that sum.

Bounds
------
Slot addresses are ``base + (((seq - 1) & mask) << 6)`` with ``mask = nslots - 1``
built from a log2 size; the slot index is a counter kept masked, so a ring write
can only land in ``[base, base + nslots * 64)``.  ``base`` must be 64-byte aligned
(a 4 KiB-aligned base -- the data area of a ring.md buffer -- is what drivers
use); the shadow-head address must be 8-byte aligned.  A start with misaligned
low bits (or a ring that would wrap the address space) is refused: the engine goes to the ``ERROR`` state and writes nothing
until ``enable`` is dropped.  ``ring_log2`` above ``max_log2_slots`` is clamped.
The configuration is sampled when a run starts; changing it during a run has no
effect until the next start.  Every simulation checks the bound with an
``Assert`` in the gateware (``checks=True``), besides the testbench's own check.

Bursts
------
A tick is one INCR burst of ``512 / data_width`` full beats at a 64-byte aligned
address (it never crosses a 4 KiB boundary).  The shadow head is one 8-byte beat
(``awsize`` 3) with the strobes of its lane.  ``awvalid``/``wvalid`` depend on
registers only, never on ``ready``.  At most ``max_outstanding`` writes wait for
their B response; responses come back in order (one AXI ID).  A response other
than OKAY/EXOKAY is counted in ``bus_errors``; the slot still counts as written.

Overflow
--------
``i_ticks.ready`` is constantly 1: the parser is never stalled.  Ticks wait in a
FIFO of ``fifo_depth`` entries while the bus is slow (a stalled bus holds
``fifo_depth`` ticks plus the one being written); a tick that finds the FIFO
full is dropped and counted, and the count rides with the next entry into the
FIFO (a tick, or a drop-only entry when the input is quiet), which makes the
writer put a drop event before that tick.

Shadow head
-----------
``head`` counts slots written and acknowledged (B received): it is the ``seq`` of
the last slot that is in host memory.  It is written to ``shadow_addr`` whenever
it has advanced by ``shadow_interval`` since the last shadow write
(0 = only when idle) and whenever the engine is idle (nothing queued, nothing
in flight) with a shadow that is behind.

Run control
-----------
``OFF`` -- ``enable`` rises -> ``RUN`` (configuration sampled, ``seq`` restarts at
1 and the counters at 0) or ``ERROR`` (misaligned configuration).  ``RUN`` --
``enable`` falls -> ``DRAIN``: input ticks are ignored (not counted), what is
queued is written, the last shadow head lands, then ``OFF``.  ``ERROR`` --
``enable`` falls -> ``OFF``.  While not running, input ticks are ignored.
"""

from __future__ import annotations

import re

from amaranth.hdl import Assert, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.formats import TICK_FIELD_BY_NAME, Event, Flag

from .axi import (AXI4WriteSignature, BURST_INCR, CACHE_NORMAL_NONCACHEABLE_BUFFERABLE,
                  RESP_DECERR, RESP_SLVERR, burst_size)
from .tick import TICK_BITS, TickLayout

__all__ = ["TickDMA", "DMAState", "SLOT_BYTES", "LAP_SHIFT", "SWITCH_WAIVERS", "lint_hierarchy",
           "dma_verilog", "lint_dma"]

SLOT_BYTES = 64
SLOT_SHIFT = 6
#: The lap tag is flags bits 12..15.
LAP_SHIFT = 12
_SEQ_BITS = 8 * TICK_FIELD_BY_NAME["seq"].size
_FLAGS_BIT = 8 * TICK_FIELD_BY_NAME["flags"].offset
_LAP_LO = _FLAGS_BIT + LAP_SHIFT          # bit 492 of the tick
_LAP_HI = _LAP_LO + 4

assert TICK_FIELD_BY_NAME["seq"].offset == 0


class DMAState(enum.Enum, shape=2):
    OFF = 0
    RUN = 1
    DRAIN = 2
    ERROR = 3


def _entry_layout(drop_bits: int) -> data.StructLayout:
    return data.StructLayout({
        # The tick without seq (bits 0..63) and without the lap-tag bits: what the
        # engine does not overwrite.
        "body": unsigned(TICK_BITS - _SEQ_BITS - 4),
        "has_tick": unsigned(1),
        # Parser ticks dropped just before this entry.
        "drops": unsigned(drop_bits),
    })


class TickDMA(wiring.Component):
    """Write a stream of ticks into the host ring (docs/ring.md) over AXI4.

    See the module documentation for the protocol.

    Parameters
    ----------
    data_width : int
        AXI data width: 64, 128, 256 or 512 bits (a tick is ``512 / data_width`` beats).
    fifo_depth : int
        Ticks the engine can queue while the bus stalls.
    max_outstanding : int
        Writes that may wait for their B response.
    max_log2_slots : int
        Largest ring: ``2**max_log2_slots`` slots (``ring_log2`` is clamped to it).
    addr_width : int
        AXI address width.
    checks : bool
        Add simulation ``Assert``\\ s (ring bounds).

    Attributes
    ----------
    i_ticks : In(stream.Signature(TickLayout))
        Ticks; ``ready`` is constantly 1.
    bus : Out(AXI4WriteSignature(addr_width, data_width))
        To host memory.
    timestamp : In(64)
        Nanosecond clock, used as the ``ts_rx`` of drop events.
    enable : In(1)
        Run (see the module documentation).
    ring_base : In(addr_width)
        Byte address of slot 0 (64-byte aligned).
    ring_log2 : In(6)
        log2 of the number of slots.
    shadow_addr : In(addr_width)
        Byte address of the 8-byte shadow head (8-byte aligned).
    shadow_interval : In(32)
        Write the shadow head every this many slots (0 = only when idle).
    state : Out(DMAState)
    head : Out(64)
        Slots written and acknowledged in this run (= seq of the last one).
    dropped : Out(64)
        Parser ticks dropped in this run.
    drop_events : Out(64)
        Drop events written in this run.
    bus_errors : Out(32)
        B responses with SLVERR/DECERR in this run.
    """

    def __init__(self, *, data_width: int = 512, fifo_depth: int = 64, max_outstanding: int = 16,
                 max_log2_slots: int = 24, addr_width: int = 64, checks: bool = True):
        burst_size(data_width)
        if not 64 <= data_width <= TICK_BITS:
            raise ValueError(f"data width must be 64..512 bits, not {data_width}")
        if fifo_depth < 2:
            raise ValueError("fifo_depth must be at least 2")
        if max_outstanding < 1:
            raise ValueError("max_outstanding must be at least 1")
        if not 0 <= max_log2_slots <= addr_width - SLOT_SHIFT:
            raise ValueError(f"max_log2_slots must be 0..{addr_width - SLOT_SHIFT}")
        self.data_width = data_width
        self.beats = TICK_BITS // data_width
        self.fifo_depth = fifo_depth
        self.max_outstanding = max_outstanding
        self.max_log2_slots = max_log2_slots
        self.addr_width = addr_width
        self.checks = checks
        super().__init__({
            "i_ticks": In(stream.Signature(TickLayout)),
            "bus": Out(AXI4WriteSignature(addr_width=addr_width, data_width=data_width)),
            "timestamp": In(64),
            "enable": In(1),
            "ring_base": In(addr_width),
            "ring_log2": In(6),
            "shadow_addr": In(addr_width),
            "shadow_interval": In(32),
            "state": Out(DMAState),
            "head": Out(64),
            "dropped": Out(64),
            "drop_events": Out(64),
            "bus_errors": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        dw = self.data_width
        aw = self.addr_width
        bus = self.bus
        L = self.max_log2_slots

        entry_layout = _entry_layout(64)
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=entry_layout.size, depth=self.fifo_depth)
        # One bit per write waiting for its B response: 1 = a ring slot, 0 = the shadow head.
        m.submodules.inflight = inflight = fifo.SyncFIFO(width=1, depth=self.max_outstanding)

        state = self.state
        running = state == DMAState.RUN
        active = (state == DMAState.RUN) | (state == DMAState.DRAIN)

        # ---------------------------------------------------------- configuration of a run
        base = Signal(aw - SLOT_SHIFT)          # slot 0, in 64-byte units
        mask = Signal(L)                        # nslots - 1
        sh_addr = Signal(aw - 3)                # shadow word, in 8-byte units
        sh_strb = Signal(dw // 8)
        interval = Signal(32)

        # ---------------------------------------------------------- ring position
        seq = Signal(_SEQ_BITS, init=1)         # seq of the next slot written
        slot = Signal(L)                        # (seq - 1) & mask
        lap = Signal(4)                         # ((seq - 1) >> log2) & 0xF

        pending = Signal(64)                    # drops not yet attached to a queue entry
        shadowed = Signal(64)                   # head value of the last shadow write

        m.d.comb += self.i_ticks.ready.eq(1)

        # ---------------------------------------------------------- input: queue or drop
        w_entry = Signal(entry_layout)
        p = self.i_ticks.payload.as_value()
        m.d.comb += [
            w_entry.body.eq(Cat(p[_SEQ_BITS:_LAP_LO], p[_LAP_HI:])),
            w_entry.drops.eq(pending),
            queue.w_data.eq(w_entry),
        ]
        with m.If(running & self.i_ticks.valid):
            with m.If(queue.w_rdy):
                m.d.comb += [queue.w_en.eq(1), w_entry.has_tick.eq(1)]
                m.d.sync += pending.eq(0)
            with m.Else():
                m.d.sync += [pending.eq(pending + 1), self.dropped.eq(self.dropped + 1)]
        with m.Elif(active & (pending != 0) & queue.w_rdy):
            m.d.comb += queue.w_en.eq(1)     # a drop-only entry
            m.d.sync += pending.eq(0)

        # ---------------------------------------------------------- the write in progress
        cur_valid = Signal()
        cur_shadow = Signal()
        cur_addr = Signal(aw)
        cur_data = Signal(TICK_BITS)
        aw_done = Signal()
        w_done = Signal()
        beat = Signal(range(self.beats)) if self.beats > 1 else None

        m.d.comb += [
            bus.awaddr.eq(cur_addr),
            bus.awlen.eq(Mux(cur_shadow, 0, self.beats - 1)),
            bus.awsize.eq(Mux(cur_shadow, 3, burst_size(dw))),
            bus.awburst.eq(BURST_INCR),
            bus.awcache.eq(CACHE_NORMAL_NONCACHEABLE_BUFFERABLE),
            bus.awprot.eq(0),
            bus.awvalid.eq(cur_valid & ~aw_done),
            bus.wvalid.eq(cur_valid & ~w_done),
            bus.wstrb.eq(Mux(cur_shadow, sh_strb, Const(-1, dw // 8))),
            bus.bready.eq(1),
        ]
        if self.beats == 1:
            m.d.comb += [bus.wdata.eq(cur_data), bus.wlast.eq(1)]
        else:
            m.d.comb += [
                bus.wdata.eq(cur_data.word_select(beat, dw)),
                bus.wlast.eq(cur_shadow | (beat == self.beats - 1)),
            ]

        aw_fire = bus.awvalid & bus.awready
        w_fire = bus.wvalid & bus.wready
        finish = cur_valid & (aw_done | aw_fire) & (w_done | (w_fire & bus.wlast))
        with m.If(aw_fire):
            m.d.sync += aw_done.eq(1)
        with m.If(w_fire):
            with m.If(bus.wlast):
                m.d.sync += w_done.eq(1)
                if beat is not None:
                    m.d.sync += beat.eq(0)
            if beat is not None:
                with m.Else():
                    m.d.sync += beat.eq(beat + 1)
        with m.If(finish):
            m.d.sync += cur_valid.eq(0)

        # ---------------------------------------------------------- responses
        with m.If(bus.bvalid):
            m.d.comb += inflight.r_en.eq(1)
            with m.If(inflight.r_rdy & inflight.r_data):
                m.d.sync += self.head.eq(self.head + 1)
            with m.If((bus.bresp == RESP_SLVERR) | (bus.bresp == RESP_DECERR)):
                m.d.sync += self.bus_errors.eq(self.bus_errors + 1)

        # ---------------------------------------------------------- what to write next
        r_entry = data.View(entry_layout, queue.r_data)
        drop_sent = Signal()        # the drop event of the entry at the queue head is written
        idle = (queue.level == 0) & ~cur_valid & ~inflight.r_rdy & (pending == 0)
        shadow_due = (self.head != shadowed) & (
            idle | ((interval != 0) & (self.head - shadowed >= interval)))
        can_load = active & (~cur_valid | finish) & inflight.w_rdy

        tick = Signal(TickLayout)
        event = Signal(TickLayout)
        m.d.comb += [
            tick.as_value().eq(Cat(seq, r_entry.body[:_LAP_LO - _SEQ_BITS], lap,
                                   r_entry.body[_LAP_LO - _SEQ_BITS:])),
            event.seq.eq(seq),
            event.ts_rx.eq(self.timestamp),
            event.ref2.eq(r_entry.drops),
            event.flags.eq(Flag.EVENT_DROP | (lap << LAP_SHIFT)),
            event.msg_type.eq(Event.TYPE),
        ]

        def load_slot(payload):
            m.d.comb += inflight.w_en.eq(1)
            m.d.comb += inflight.w_data.eq(1)
            m.d.sync += [
                cur_valid.eq(1), cur_shadow.eq(0), aw_done.eq(0), w_done.eq(0),
                cur_addr.eq(Cat(Const(0, SLOT_SHIFT), base + slot)),
                cur_data.eq(payload),
                seq.eq(seq + 1),
                slot.eq((slot + 1) & mask),
            ]
            with m.If(((slot + 1) & mask) == 0):
                m.d.sync += lap.eq(lap + 1)

        with m.If(can_load):
            with m.If(shadow_due):
                m.d.comb += inflight.w_en.eq(1)      # w_data 0: the shadow head
                m.d.sync += [
                    cur_valid.eq(1), cur_shadow.eq(1), aw_done.eq(0), w_done.eq(0),
                    cur_addr.eq(Cat(Const(0, 3), sh_addr)),
                    cur_data.eq(Cat(*[self.head] * (TICK_BITS // 64))),
                    shadowed.eq(self.head),
                ]
            with m.Elif(queue.r_rdy):
                with m.If((r_entry.drops != 0) & ~drop_sent):
                    load_slot(event)
                    m.d.sync += self.drop_events.eq(self.drop_events + 1)
                    with m.If(r_entry.has_tick):
                        m.d.sync += drop_sent.eq(1)
                    with m.Else():
                        m.d.comb += queue.r_en.eq(1)
                with m.Else():
                    load_slot(tick)
                    m.d.comb += queue.r_en.eq(1)
                    m.d.sync += drop_sent.eq(0)

        # ---------------------------------------------------------- run control
        log2 = Signal(range(L + 1))
        m.d.comb += log2.eq(Mux(self.ring_log2 > L, L, self.ring_log2))
        last_slot = self.ring_base[SLOT_SHIFT:] + ((Const(1, L + 1) << log2) - 1)
        misaligned = ((self.ring_base[:SLOT_SHIFT] != 0) | (self.shadow_addr[:3] != 0)
                      | last_slot[aw - SLOT_SHIFT])     # the ring would wrap the address space
        lane_bits = burst_size(dw) - 3
        with m.Switch(state):
            with m.Case(DMAState.OFF):
                with m.If(self.enable):
                    with m.If(misaligned):
                        m.d.sync += state.eq(DMAState.ERROR)
                    with m.Else():
                        m.d.sync += [
                            state.eq(DMAState.RUN),
                            base.eq(self.ring_base[SLOT_SHIFT:]),
                            mask.eq((Const(1, L + 1) << log2) - 1),
                            sh_addr.eq(self.shadow_addr[3:]),
                            interval.eq(self.shadow_interval),
                            seq.eq(1), slot.eq(0), lap.eq(0),
                            pending.eq(0), shadowed.eq(0), drop_sent.eq(0),
                            self.head.eq(0), self.dropped.eq(0), self.drop_events.eq(0),
                            self.bus_errors.eq(0),
                        ]
                        if lane_bits > 0:
                            m.d.sync += sh_strb.eq(Const(0xFF, dw // 8) << (self.shadow_addr[3:3 + lane_bits] * 8))
                        else:
                            m.d.sync += sh_strb.eq(0xFF)
            with m.Case(DMAState.RUN):
                with m.If(~self.enable):
                    m.d.sync += state.eq(DMAState.DRAIN)
            with m.Case(DMAState.DRAIN):
                # (if enable came back meanwhile, OFF starts a new run next cycle)
                with m.If(idle & (self.head == shadowed)):
                    m.d.sync += state.eq(DMAState.OFF)
            with m.Case(DMAState.ERROR):
                with m.If(~self.enable):
                    m.d.sync += state.eq(DMAState.OFF)

        # ---------------------------------------------------------- simulation checks
        if self.checks:
            # In the sync domain: checked once per clock edge on settled values (a comb
            # Assert would also see the simulator's intermediate evaluations).
            lo = Cat(Const(0, SLOT_SHIFT), base)
            size = Cat(Const(0, SLOT_SHIFT), mask) + SLOT_BYTES
            with m.If(bus.awvalid & ~cur_shadow):
                m.d.sync += Assert((bus.awaddr >= lo) & (bus.awaddr + SLOT_BYTES <= lo + size)
                                   & (bus.awaddr[:SLOT_SHIFT] == 0),
                                   "ring write outside [base, base + nslots*64)")
            with m.If(bus.awvalid & cur_shadow):
                m.d.sync += Assert(bus.awaddr == Cat(Const(0, 3), sh_addr), "shadow write elsewhere")
        return m


# =========================================================================== lint

#: Waivers for what the Yosys Verilog writer makes of ``m.Switch`` (beyond those of
#: :data:`wiretick.hdl.lint.PARSER_WAIVERS`).
SWITCH_WAIVERS = """\
// Yosys writes each process as one `always @*` block per signal that first assigns
// the signal its previous/default value, then a `casez` listing only the `m.Switch`
// cases that change it: the unlisted values keep that default, no latch can form.
lint_off -rule CASEINCOMPLETE
"""


def _one_line_module_headers(text: str) -> str:
    # Yosys wraps a long port list over several lines; the alias-waiver generator
    # reads the port list from the `module` line, so it is joined (same Verilog).
    return re.sub(r"^(module\s[^;]*?\))\s*;", lambda mm: " ".join(mm.group(1).split()) + ";",
                  text, flags=re.M)


def lint_hierarchy(text: str, top: str, waivers: str = "") -> str:
    """``verilator --lint-only -Wall`` on Amaranth Verilog of a hierarchy.

    Uses the project's waivers (:data:`wiretick.sim.verilator.AMARANTH_WAIVERS`,
    :data:`wiretick.hdl.lint.PARSER_WAIVERS` and the named-alias waivers of
    :func:`wiretick.hdl.lint.alias_waivers`, which never cover a top-level port),
    :data:`SWITCH_WAIVERS`, and the design's own ``waivers``.
    """
    from wiretick.sim.verilator import AMARANTH_WAIVERS, lint

    from .lint import PARSER_WAIVERS, alias_waivers
    text = _one_line_module_headers(text)
    return lint(text, top, waivers=AMARANTH_WAIVERS + PARSER_WAIVERS + SWITCH_WAIVERS + waivers
                + alias_waivers(text, top))


def dma_verilog(top: str = "tick_dma", **kw) -> str:
    """Verilog of :class:`TickDMA` (``kw`` to its constructor; simulation checks off)."""
    from amaranth.back import verilog
    kw.setdefault("checks", False)
    return verilog.convert(TickDMA(**kw), name=top)


def lint_dma(top: str = "tick_dma", **kw) -> str:
    """Lint :class:`TickDMA`; raise :class:`wiretick.sim.verilator.LintError` on findings."""
    return lint_hierarchy(dma_verilog(top, **kw), top)
