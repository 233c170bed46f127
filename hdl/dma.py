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
``i_ticks`` is always-ready: the parser is never stalled.  Ticks wait in a
queue while the bus is slow (a stalled bus holds ``fifo_depth`` ticks plus the
one being written: a block RAM of ``fifo_depth - 3`` entries, its output
register, a register beside it, the next entry and the entry on the bus); a tick that finds the
queue full is dropped and counted, and the count rides with the next entry
into the queue (a tick, or a drop-only entry when the input is quiet), which
makes the writer put a drop event before that tick.  ``dropped``,
``drop_events`` and ``bus_errors`` are 32 bits and wrap; the host extends them
(:data:`wiretick.host.contract.registers.COUNTER_NOTE`).

Timing
------
Everything the writer decides in a cycle is one LUT of the bus's ready inputs
(``free``) and a register: the register-only half of each decision (``ok_entry``,
``ok_slot``, ``ok_shadow``) is formed a cycle ahead from the next values of the
registers it reads (checked against them by an ``Assert`` in simulation), twice,
for a free and a busy bus, and ``free`` selects one; the queue's read enable is
one LUT after that.  The queue's level flags, the outstanding-write count (a
thermometer code), the shadow interval reached (``lag >= interval``, a cycle
late) and the run start are registers; statistics take their increment a cycle
late; the input is registered before the queue, and the block RAM's output
before the entry the writer tests.  W data is a multiplexer of registers (no copy
of the tick into a write register).

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

from amaranth.hdl import Assert, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import TICK_FIELD_BY_NAME, Event, Flag
from wiretick.host.contract.registers import DMA_DRAINING, DMA_OFF, DMA_REFUSED, DMA_RUNNING
from wiretick.host.contract.ring import LAP_SHIFT, LAP_WIDTH, SLOT_SHIFT, SLOT_SIZE

from .axi import (AXI4WriteSignature, BURST_INCR, CACHE_NORMAL_NONCACHEABLE_BUFFERABLE,
                  RESP_DECERR, RESP_SLVERR, burst_size)
from .tick import TICK_BITS, TickLayout

__all__ = ["TickDMA", "DMAState"]

_SEQ_BITS = 8 * TICK_FIELD_BY_NAME["seq"].size
_FLAGS_BIT = 8 * TICK_FIELD_BY_NAME["flags"].offset
_LAP_LO = _FLAGS_BIT + LAP_SHIFT          # bit 492 of the tick
_LAP_HI = _LAP_LO + LAP_WIDTH

assert TICK_FIELD_BY_NAME["seq"].offset == 0


class DMAState(enum.Enum, shape=2):
    """The engine's run state: the values of the ``DMA_STATE`` register."""

    OFF = DMA_OFF
    RUN = DMA_RUNNING
    DRAIN = DMA_DRAINING
    ERROR = DMA_REFUSED


def _entry_layout(drop_bits: int) -> data.StructLayout:
    return data.StructLayout({
        # The tick without seq (bits 0..63) and without the lap-tag bits: what the
        # engine does not overwrite.
        "body": unsigned(TICK_BITS - _SEQ_BITS - LAP_WIDTH),
        "has_tick": unsigned(1),
        # drops != 0, decided when the entry is written: the read side tests one bit.
        "has_drops": unsigned(1),
        # Parser ticks dropped just before this entry.
        "drops": unsigned(drop_bits),
    })


def _select_formed(m: Module, sel, regs: dict, low: dict, high: dict, suffixes: tuple[str, str]) -> None:
    """Each register ``regs[name]`` takes ``high[name]`` when ``sel`` is high, else ``low[name]``.

    Both values are formed from registers, as nets kept apart (``<name>_<suffix>``), so
    that the LUT mapper cannot fold ``sel`` back into them: the register is one LUT
    after ``sel``."""
    for name, reg in regs.items():
        lo = Signal.like(reg, name=f"{name}_{suffixes[0]}", attrs={"keep": 1})
        hi = Signal.like(reg, name=f"{name}_{suffixes[1]}", attrs={"keep": 1})
        m.d.comb += [lo.eq(low[name]), hi.eq(high[name])]
        m.d.sync += reg.eq(Mux(sel, hi, lo))


class TickDMA(wiring.Component):
    """Write a stream of ticks into the host ring (docs/ring.md) over AXI4.

    See the module documentation for the protocol.

    Parameters
    ----------
    data_width : int
        AXI data width: 64, 128, 256 or 512 bits (a tick is ``512 / data_width`` beats).
    fifo_depth : int
        Ticks the engine can queue while the bus stalls (at least 4).
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
    i_ticks : In(stream.Signature(TickLayout, always_ready=True))
        Ticks: the engine takes one every cycle.
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
    starting : Out(1)
        The cycle the engine leaves ``OFF``: the cycle after ``ENABLE`` has been high
        for three (the ring configuration is decoded in registers meanwhile).
    state : Out(DMAState)
    head : Out(64)
        Slots written and acknowledged in this run (= seq of the last one), from the
        cycle after the acknowledgement.
    dropped : Out(32)
        Parser ticks dropped in this run, modulo 2**32 (the host extends it).
    drop_events : Out(32)
        Drop events written in this run, modulo 2**32 (the host extends it).
    bus_errors : Out(32)
        B responses with SLVERR/DECERR in this run, modulo 2**32.
    """

    def __init__(self, *, data_width: int = 512, fifo_depth: int = 64, max_outstanding: int = 16,
                 max_log2_slots: int = 24, addr_width: int = 64, checks: bool = True):
        burst_size(data_width)
        if not 64 <= data_width <= TICK_BITS:
            raise ValueError(f"data width must be 64..512 bits, not {data_width}")
        if fifo_depth < 4:
            raise ValueError("fifo_depth must be at least 4")
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
            "i_ticks": In(stream.Signature(TickLayout, always_ready=True)),
            "bus": Out(AXI4WriteSignature(addr_width=addr_width, data_width=data_width)),
            "timestamp": In(64),
            "enable": In(1),
            "ring_base": In(addr_width),
            "ring_log2": In(6),
            "shadow_addr": In(addr_width),
            "shadow_interval": In(32),
            "state": Out(DMAState),
            "starting": Out(1),
            "head": Out(64),
            "dropped": Out(32),
            "drop_events": Out(32),
            "bus_errors": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        dw = self.data_width
        aw = self.addr_width
        bus = self.bus
        L = self.max_log2_slots

        state = self.state
        # ``state`` decoded in registers of their own, set with it: every decision of
        # the writer starts from one of them rather than a two-bit compare.
        running = Signal()                      # state == RUN
        active = Signal()                       # state is RUN or DRAIN

        # ---------------------------------------------------------- configuration of a run
        base = Signal(aw - SLOT_SHIFT)          # slot 0, in 64-byte units
        mask = Signal(L)                        # nslots - 1
        sh_addr = Signal(aw - 3)                # shadow word, in 8-byte units
        sh_strb = Signal(dw // 8)
        interval = Signal(32)
        interval_nz = Signal()

        # ---------------------------------------------------------- ring position
        seq = Signal(_SEQ_BITS, reset_less=True)  # seq of the last slot loaded (the write in progress)
        slot = Signal(L, reset_less=True)       # index of the next slot
        left = Signal(L, reset_less=True)       # mask - slot: slots after the next before the ring wraps
        at_last = Signal()                      # slot == mask (left == 0), kept as a register
        mask_zero = Signal()                    # a one-slot ring
        lap_next = Signal(LAP_WIDTH, reset_less=True)   # lap tag of the next slot
        cur_lap = Signal(LAP_WIDTH)                     # lap tag of the write in progress

        pending = Signal(64, reset_less=True)  # drops not yet attached to a queue entry
        pending_nz = Signal()                   # pending != 0
        shadowed = Signal(64, reset_less=True)  # head value of the last shadow write

        # Run state and statistics are cleared when a run starts, not by the domain's
        # reset: one synchronous clear is the flip-flops' own set/reset input, two would
        # take a LUT per bit.  (After a reset they hold the last run's values until the
        # next run; the engine is OFF and writes nothing.)
        head = Signal(64, reset_less=True)
        dropped = Signal(32, reset_less=True)
        drop_events = Signal(32, reset_less=True)
        bus_errors = Signal(32, reset_less=True)
        m.d.comb += [self.head.eq(head), self.dropped.eq(dropped), self.drop_events.eq(drop_events),
                     self.bus_errors.eq(bus_errors)]

        # ---------------------------------------------------------- the queue
        # A block RAM of fifo_depth - 3 entries, then four entries in registers:
        # the RAM's output ``do_data``, ``mid`` (the RAM's output, registered beside
        # the RAMs), ``nxt`` (the next entry, whose flags the writer tests) and
        # ``cur_e`` (the entry of the write on the bus, which W reads).  The RAM's
        # clock-to-output is two thirds of a cycle (4.3 ns): its output goes into
        # ``mid`` with no logic between, and ``mid``'s only reader is ``nxt`` (when
        # ``nxt`` took the RAM's output itself, its other readers pulled it away from
        # the RAMs, and the route did not fit).  Entries move on clock enables only.
        # Capacity: fifo_depth + 1 entries, the one being written included.
        #
        # The read port is combinational with ``do_data`` its register, and the
        # memory is marked ``no_rw_check``: Yosys then merges the register into the
        # block RAM and adds no logic for a read and a write of the same address in
        # one cycle, which never happens here (an entry is read only once it is in
        # the RAM, and a full RAM takes no write).  A synchronous Amaranth read port
        # asks for the old data on such a collision, which Yosys emulates on ECP5
        # with two flip-flops and a LUT per bit (1,020 FFs and 510 LUTs here).
        entry_layout = _entry_layout(64)
        inner_depth = self.fifo_depth - 3
        m.submodules.queue_mem = qmem = Memory(shape=entry_layout.size, depth=inner_depth, init=[],
                                               attrs={"no_rw_check": 1})
        q_wr = qmem.write_port()
        q_rd = qmem.read_port(domain="comb")
        do_data = Signal(entry_layout.size)
        produce = Signal(range(inner_depth))
        consume = Signal(range(inner_depth))
        q_level = Signal(range(inner_depth + 1))
        w_rdy = Signal(init=1)                  # q_level != inner_depth, as a register
        q_any = Signal()                        # q_level != 0, as a register
        q_wen = Signal()
        q_ren = Signal()
        do_valid = Signal()                     # the RAM's output holds an entry
        mid = Signal(entry_layout.size)
        mid_valid = Signal()
        mid_nxt = Signal()                      # mid_valid & nxt_valid, as a register
        nxt = Signal(entry_layout)
        nxt_valid = Signal()
        cur_e = Signal(entry_layout)
        take = Signal(attrs={"keep": 1})        # cur_e <- nxt (a net of its own, like ``free``)
        # do_valid & mid_valid & nxt_valid, as a register: the read enable is then one
        # LUT of registers other than those of the stage loads and of ``take``, which the
        # LUT mapper cannot fold into the loads (it did: the read enable into the 14
        # block RAMs came out two LUTs and a long route after ``take``)
        full = Signal()
        pend_tick = Signal()                    # cur_e's drop event is written, its tick not yet

        def _incr(v):
            return Mux(v == inner_depth - 1, 0, v + 1)

        m.d.comb += [
            q_wr.addr.eq(produce), q_wr.en.eq(q_wen),
            q_rd.addr.eq(consume),
            # (an entry moves on wherever one below it is empty or taken)
            q_ren.eq(q_any & (~full | take)),
        ]
        with m.If(q_wen):
            m.d.sync += produce.eq(_incr(produce))
        with m.If(q_ren):
            m.d.sync += [consume.eq(_incr(consume)), do_data.eq(q_rd.data)]

        def queue_next(t: int) -> dict:
            """The queue's level and stage flags after this cycle, if ``take`` is ``t``."""
            tk = Const(t, 1)
            q_ren_t = q_any & (~full | tk)
            nxt_load_t = mid_valid & (~nxt_valid | tk)
            mid_load_t = do_valid & (~mid_nxt | tk)
            do_n = Mux(q_ren_t, 1, Mux(mid_load_t, 0, do_valid))
            mid_n = Mux(mid_load_t, 1, Mux(nxt_load_t, 0, mid_valid))
            nxt_n = Mux(nxt_load_t, 1, Mux(tk, 0, nxt_valid))
            # The level's flags come from comparisons of the level itself, selected by the
            # write and read strobes (no adder before them).
            inc, dec = q_wen & ~q_ren_t, q_ren_t & ~q_wen
            return {
                "q_level": Mux(inc, q_level + 1, Mux(dec, q_level - 1, q_level)),
                "w_rdy": Mux(inc, q_level != inner_depth - 1, Mux(dec, 1, q_level != inner_depth)),
                "q_any": Mux(inc, 1, Mux(dec, q_level != 1, q_level != 0)),
                "do_valid": do_n, "mid_valid": mid_n, "nxt_valid": nxt_n,
                "full": do_n & mid_n & nxt_n, "mid_nxt": mid_n & nxt_n,
            }

        # Each is formed for ``take`` low and high, from registers (kept nets), and
        # ``take`` selects: one LUT after it, where the strobes put three.
        hold_n, take_n = queue_next(0), queue_next(1)
        queue_regs = {"q_level": q_level, "w_rdy": w_rdy, "q_any": q_any, "do_valid": do_valid,
                      "mid_valid": mid_valid, "nxt_valid": nxt_valid, "full": full, "mid_nxt": mid_nxt}
        _select_formed(m, take, queue_regs, hold_n, take_n, ("if_hold", "if_take"))
        # (the entries' contents move below, on enables of their own)

        # ---------------------------------------------------------- input: queue or drop
        w_entry = Signal(entry_layout)
        p = self.i_ticks.payload.as_value()
        # The input is registered before the queue: the parser's tick register and the
        # queue's block RAMs are placed apart, and the write strobe fans out to all of
        # them, so the route between the two takes a cycle of its own.
        offered = Signal()                      # a tick arrived while running, a cycle ago
        in_body = Signal(len(w_entry.body), reset_less=True)
        m.d.sync += [offered.eq(running & self.i_ticks.valid),
                     in_body.eq(Cat(p[_SEQ_BITS:_LAP_LO], p[_LAP_HI:]))]
        drop_now = Signal()                     # the tick that arrived finds the queue full
        # The write strobe: a tick, or a drop-only entry carrying the count of ticks
        # dropped since the last entry.
        m.d.comb += [
            drop_now.eq(offered & ~w_rdy),
            w_entry.body.eq(in_body),
            w_entry.drops.eq(pending),
            w_entry.has_drops.eq(pending_nz),
            w_entry.has_tick.eq(offered),
            q_wr.data.eq(w_entry),
        ]
        # Counters add their increment every cycle (no enable): a carry chain and
        # nothing else, where Yosys put a LUT per bit before an enabled counter.
        m.d.sync += [
            pending.eq(Mux(q_wen, 0, pending) + drop_now),     # (q_wen and drop_now exclude each other)
            pending_nz.eq(Mux(q_wen, 0, pending_nz) | drop_now),
            dropped.eq(dropped + drop_now),
        ]

        # ---------------------------------------------------------- the write in progress
        # ``awv``/``wv`` are AWVALID/WVALID themselves: the write is in progress while
        # either is high, and the bus can take the next one in a cycle where each is
        # low or fires (one LUT of the readies and these registers).
        awv = Signal()
        wv = Signal()
        cur_valid = awv | wv
        cur_shadow = Signal()
        cur_event = Signal()
        cur_addr = Signal(aw)
        cur_ts = Signal(64)                     # ts_rx of a drop event: the time it was loaded
        beat = Signal(range(self.beats)) if self.beats > 1 else None
        last_beat = Signal()                    # the next W beat is the last of the write

        # W data: a multiplexer of registers (the entry, seq, lap, time, shadow value)
        # selected by registers; for narrow buses the beat is selected first.
        tick = Cat(seq, cur_e.body[:_LAP_LO - _SEQ_BITS], cur_lap, cur_e.body[_LAP_LO - _SEQ_BITS:])
        event = Signal(TickLayout)
        m.d.comb += [
            event.seq.eq(seq),
            event.ts_rx.eq(cur_ts),
            event.ref2.eq(cur_e.drops),
            event.flags.eq(Flag.EVENT_DROP | (cur_lap << LAP_SHIFT)),
            event.msg_type.eq(Event.TYPE),
        ]
        shadow_word = Cat(*[shadowed] * (dw // 64))

        def this_beat(v):
            return v if beat is None else v.word_select(beat, dw)

        m.d.comb += [
            bus.awaddr.eq(cur_addr),
            bus.awlen.eq(Mux(cur_shadow, 0, self.beats - 1)),
            bus.awsize.eq(Mux(cur_shadow, 3, burst_size(dw))),
            bus.awburst.eq(BURST_INCR),
            bus.awcache.eq(CACHE_NORMAL_NONCACHEABLE_BUFFERABLE),
            bus.awprot.eq(0),
            bus.awvalid.eq(awv),
            bus.wvalid.eq(wv),
            bus.wdata.eq(Mux(cur_shadow, shadow_word,
                             Mux(cur_event, this_beat(event.as_value()), this_beat(tick)))),
            bus.wstrb.eq(Mux(cur_shadow, sh_strb, Const(-1, dw // 8))),
            bus.wlast.eq(1 if beat is None else last_beat),
            bus.bready.eq(1),
        ]

        aw_fire = awv & bus.awready
        w_fire = wv & bus.wready
        # (kept as a net of its own: one LUT of the readies that every decision shares,
        # where the LUT mapper had spread it over the terms after it)
        free = Signal(attrs={"keep": 1})
        m.d.comb += free.eq((~awv | bus.awready) & (~wv | (bus.wready & bus.wlast)))
        # A second ``free`` (and ``take``) for the enables of the three 500-bit entry
        # registers, from copies of AWVALID and WVALID: one net reaching those and the
        # decision logic too spanned the engine, 3 ns of route before the decision's
        # next LUT.  (The copies are also cleared at a run start, when both are 0
        # anyway: flip-flops synthesis cannot merge with the originals.)
        awv_c, wv_c = Signal(), Signal()
        free_c = Signal(attrs={"keep": 1})
        take_c = Signal(attrs={"keep": 1})
        m.d.comb += free_c.eq((~awv_c | bus.awready) & (~wv_c | (bus.wready & bus.wlast)))

        # The entries' contents move on enables of as few terms as the protocol allows,
        # each driving some 500 flip-flops: ``nxt`` takes the RAM's output whenever it
        # is empty or taken (an empty ``nxt`` holds nothing), and ``cur_e`` takes ``nxt``
        # whenever the bus is free, unless a tick waits behind its drop event (only a
        # write loaded with ``take`` reads ``cur_e``; a shadow write does not).
        with m.If(~mid_nxt | take_c):
            m.d.sync += mid.eq(do_data)
        with m.If(~nxt_valid | take_c):
            m.d.sync += nxt.eq(mid)
        with m.If(free_c & ~pend_tick):
            m.d.sync += cur_e.eq(nxt)
        with m.If(aw_fire):
            m.d.sync += awv.eq(0)
        with m.If(w_fire):
            with m.If(bus.wlast):
                m.d.sync += wv.eq(0)
                if beat is not None:
                    m.d.sync += beat.eq(0)
            if beat is not None:
                with m.Else():
                    m.d.sync += [beat.eq(beat + 1), last_beat.eq(beat == self.beats - 2)]

        # ---------------------------------------------------------- responses
        # One bit per write waiting for its B response: 1 = a ring slot, 0 = the shadow
        # head.  A write enters it the cycle after it is loaded (``push``), off the
        # decision: its B response comes a cycle after its W handshake at the earliest,
        # which is a cycle after the load.
        m.submodules.inflight = inflight = fifo.SyncFIFO(width=1, depth=self.max_outstanding)
        push = Signal()
        push_ring = Signal()
        m.d.comb += [inflight.w_en.eq(push), inflight.w_data.eq(push_ring)]
        # Writes pushed and not yet answered, as a thermometer code (``out[i]``: more than
        # ``i``): each bit's next value is one LUT of ``push``, the response and its
        # neighbours, off the decision (``free`` reaches some 300 flip-flops already).
        # The writes outstanding are those and ``push``: ``room`` (fewer than
        # ``max_outstanding``) is one of two bits, as ``push`` says.
        n_out = self.max_outstanding
        out = Signal(n_out)
        out_n = Signal(n_out)
        load = Signal()                         # a write (a slot or the shadow head) is loaded
        pop = Signal()
        m.d.comb += pop.eq(bus.bvalid & inflight.r_rdy)
        up, down = push & ~pop, pop & ~push
        for i in range(n_out):
            below = 1 if i == 0 else out[i - 1]
            above = 0 if i == n_out - 1 else out[i + 1]
            m.d.comb += out_n[i].eq(Mux(up, below, Mux(down, above, out[i])))
        m.d.sync += out.eq(out_n)

        def room_with(thermo, pushing):
            """Fewer than ``max_outstanding`` writes: ``thermo``'s and one more if ``pushing``."""
            return ~Mux(pushing, thermo[n_out - 2] if n_out > 1 else 1, thermo[n_out - 1])

        room = room_with(out, push)
        ack_ring = Signal()
        # ``head`` (and ``lag``, ``behind``) take the acknowledgement a cycle late: the
        # response FIFO's LUT RAM read, then a 64-bit carry chain or a long route to
        # the shadow head's enables, did not fit a cycle.
        ack_late = Signal()
        m.d.comb += [
            ack_ring.eq(pop & inflight.r_data),
            inflight.r_en.eq(bus.bvalid),
        ]
        m.d.sync += [
            ack_late.eq(ack_ring),
            head.eq(head + ack_late),
            bus_errors.eq(bus_errors + (bus.bvalid & ((bus.bresp == RESP_SLVERR) | (bus.bresp == RESP_DECERR)))),
        ]

        # ---------------------------------------------------------- the shadow head
        # ``lag`` = head - shadowed (saturating in its top bit), ``behind`` = lag != 0,
        # and ``hit`` = lag >= interval two cycles late: the wide comparison is a
        # register of its own (``lag_ge``), at the cost of a shadow write two cycles
        # later.
        lag = Signal(33, reset_less=True)
        lag_ge = Signal()                       # lag >= interval, a cycle late
        sl_late = Signal()                      # a shadow write was loaded a cycle ago
        behind = Signal()
        hit = Signal()                          # implies behind (lag >= interval >= 1)
        shadow_load = Signal()
        idle = Signal()
        idle_late = Signal()                    # idle one cycle ago: what starts an idle shadow write
        m.d.comb += idle.eq(~offered & ~q_any & ~do_valid & ~mid_valid & ~nxt_valid & ~pend_tick & ~cur_valid
                            & ~push & ~out[0] & ~ack_late & ~pending_nz)
        m.d.sync += idle_late.eq(idle)
        # (a shadow write takes ``head``, which lacks ``ack_late``: that one is still to be
        # shadowed)
        with m.If(shadow_load):
            m.d.sync += [lag.eq(ack_late), behind.eq(ack_late)]
        with m.Elif(ack_late):
            m.d.sync += behind.eq(1)
            with m.If(~lag[32]):
                m.d.sync += lag.eq(lag + 1)

        # ---------------------------------------------------------- what to write next
        # Priority: a shadow head that is due by interval, the tick whose drop event
        # was just written, the next entry (its drop event first if it has one), and
        # a shadow head that is behind when there is nothing else (idle).
        # A shadow write started by a stale ``idle_late`` costs at most one write's
        # delay to an entry that arrived meanwhile; the run stops on ``idle`` itself.
        # Each decision is ``free`` (the half that depends on the bus's readies) and a
        # register, ``ok_*``: the register-only half, formed a cycle ahead from the next
        # values of the registers it reads (see "the decision's register half" below).
        # The queue's read enable, into 14 block RAMs, is then a LUT after ``take``.
        # (Formed from the registers in the same cycle, the half took two LUTs and the
        # mapper folded it into what follows ``take``: the read enable came out five
        # LUTs deep.)
        ok_shadow = Signal()                    # a shadow write is due
        ok_entry = Signal()                     # the next entry can be loaded
        ok_slot = Signal()                      # a ring slot can be loaded (the entry, or the tick after its drop event)
        slot_load = Signal()                    # a ring slot (a tick or a drop event) is loaded
        m.d.comb += [
            shadow_load.eq(free & ok_shadow),
            take.eq(free & ok_entry),
            take_c.eq(free_c & ok_entry),
            # (what the branches below that load a slot add up to, with the shadow
            # write's priority: the ring position follows this alone)
            slot_load.eq(free & ok_slot),
        ]
        # Statistics take their increment a cycle late (off the decision path).
        event_loaded = Signal()
        m.d.sync += [event_loaded.eq(0), drop_events.eq(drop_events + event_loaded)]
        m.d.comb += load.eq(shadow_load | slot_load)
        m.d.sync += [push.eq(load), push_ring.eq(slot_load)]

        def load_slot(is_event):
            m.d.sync += [
                awv.eq(1), wv.eq(1), cur_shadow.eq(0), cur_event.eq(is_event),
                last_beat.eq(self.beats == 1),
                cur_addr.eq(Cat(Const(0, SLOT_SHIFT), base + slot)),
            ]

        # The ring position moves on ``slot_load``: two LUTs of registers and the bus's
        # readies, not the end of the branches below.
        with m.If(slot_load):
            m.d.sync += [seq.eq(seq + 1), cur_lap.eq(lap_next)]
            with m.If(at_last):
                m.d.sync += [slot.eq(0), left.eq(mask), at_last.eq(mask_zero), lap_next.eq(lap_next + 1)]
            with m.Else():
                m.d.sync += [slot.eq(slot + 1), left.eq(left - 1), at_last.eq(left == 1)]

        with m.If(shadow_load):
            m.d.sync += [
                awv.eq(1), wv.eq(1), cur_shadow.eq(1), cur_event.eq(0),
                cur_addr.eq(Cat(Const(0, 3), sh_addr)),
                last_beat.eq(1),
                shadowed.eq(head),
            ]
        with m.Elif(slot_load & pend_tick):
            load_slot(0)
            m.d.sync += pend_tick.eq(0)
        with m.Elif(take):
            with m.If(nxt.has_drops):
                load_slot(1)
                m.d.sync += [pend_tick.eq(nxt.has_tick), cur_ts.eq(self.timestamp), event_loaded.eq(1)]
            with m.Else():
                load_slot(0)

        # ---------------------------------------------------------- run control
        # The ring's configuration is decoded in registers while the engine is OFF (two
        # stages: the clamp and mask, then the end-of-ring address check, a carry chain
        # across the whole address): a run starts once ENABLE has been high for three
        # cycles, so what it samples was set with or before ENABLE.
        log2 = Signal(range(L + 1))
        c_mask = Signal(L)
        misaligned = Signal()
        en_q = Signal(2)
        m.d.sync += [
            log2.eq(Mux(self.ring_log2 > L, L, self.ring_log2)),
            c_mask.eq((Const(1, L + 1) << Mux(self.ring_log2 > L, L, self.ring_log2)) - 1),
            misaligned.eq((self.ring_base[:SLOT_SHIFT] != 0) | (self.shadow_addr[:3] != 0)
                          | (self.ring_base[SLOT_SHIFT:] + c_mask)[aw - SLOT_SHIFT]),   # would wrap the address space
            en_q.eq(Cat(self.enable, en_q[0])),
        ]
        # ``starting`` and ``run_start`` (a start that is not refused) are registers,
        # formed a cycle ahead: they clear some 300 flip-flops and feed the decision
        # registers below, and as LUTs of ENABLE's history they were the core's
        # critical path (a cycle more before a run starts costs nothing).
        run_start = Signal()
        go_n = (state == DMAState.OFF) & ~self.starting & self.enable & en_q.all()
        m.d.sync += [self.starting.eq(go_n), run_start.eq(go_n & ~misaligned)]
        m.d.sync += [
            awv_c.eq(Mux(run_start, 0, Mux(load, 1, Mux(aw_fire, 0, awv_c)))),
            wv_c.eq(Mux(run_start, 0, Mux(load, 1, Mux(w_fire & bus.wlast, 0, wv_c)))),
        ]
        # The run state and the statistics are cleared by one condition of their own,
        # outside the state machine's switch: Yosys then makes it the flip-flops'
        # synchronous reset (a clear inside the switch costs a LUT per bit).
        with m.If(run_start):
            m.d.sync += [
                seq.eq(0), slot.eq(0), lap_next.eq(0),
                pending.eq(0), pending_nz.eq(0), pend_tick.eq(0),
                lag.eq(0), behind.eq(0),
                head.eq(0), ack_late.eq(0), dropped.eq(0), drop_events.eq(0), event_loaded.eq(0),
                bus_errors.eq(0),
            ]
        lane_bits = burst_size(dw) - 3
        with m.Switch(state):
            with m.Case(DMAState.OFF):
                with m.If(self.starting):
                    with m.If(~run_start):
                        m.d.sync += state.eq(DMAState.ERROR)
                    with m.Else():
                        m.d.sync += [
                            state.eq(DMAState.RUN), running.eq(1), active.eq(1),
                            base.eq(self.ring_base[SLOT_SHIFT:]),
                            mask.eq(c_mask),
                            left.eq(c_mask),
                            at_last.eq(log2 == 0), mask_zero.eq(log2 == 0),
                            sh_addr.eq(self.shadow_addr[3:]),
                            interval.eq(self.shadow_interval),
                            interval_nz.eq(self.shadow_interval != 0),
                        ]
                        if lane_bits > 0:
                            m.d.sync += sh_strb.eq(Const(0xFF, dw // 8) << (self.shadow_addr[3:3 + lane_bits] * 8))
                        else:
                            m.d.sync += sh_strb.eq(0xFF)
            with m.Case(DMAState.RUN):
                with m.If(~self.enable):
                    m.d.sync += [state.eq(DMAState.DRAIN), running.eq(0)]
            with m.Case(DMAState.DRAIN):
                # (if enable came back meanwhile, OFF starts a new run next cycle)
                with m.If(idle & ~behind):
                    m.d.sync += [state.eq(DMAState.OFF), active.eq(0)]
            with m.Case(DMAState.ERROR):
                with m.If(~self.enable):
                    m.d.sync += state.eq(DMAState.OFF)

        # ---------------------------------------------------------- the decision's register half
        # The next values of the registers the ``ok_*`` terms read, as their own
        # updates above compute them (``hit`` takes its value from here).  They depend
        # on this cycle's decision, which is ``free`` and registers: each ``ok_*`` is
        # formed twice, for ``free`` low and high, from registers alone (kept nets, so
        # that the LUT mapper cannot fold ``free`` back in), and ``free`` selects one:
        # one LUT after ``free``, where the next values put three or four LUTs and a
        # long route after it.
        active_n = Mux(run_start, 1, Mux((state == DMAState.DRAIN) & idle & ~behind, 0, active))
        # (``lag >= interval`` a cycle late, a register: its 33-bit carry chain before
        # the decision's LUTs did not fit a cycle.  The cycle after a shadow write is
        # loaded it still sees the lag from before, which ``sl_late`` masks.)
        m.d.sync += [lag_ge.eq(~run_start & (lag >= interval)), sl_late.eq(shadow_load)]
        lag_hit = interval_nz & lag_ge & ~sl_late
        idle_late_n = idle

        def next_decision(f: int) -> dict:
            shadow_load_f = ok_shadow if f else Const(0)
            take_f = ok_entry if f else Const(0)
            slot_load_f = ok_slot if f else Const(0)
            room_n = room_with(out_n, shadow_load_f | slot_load_f)
            # (``queue_next`` forms the same value; taking it from there gave the LUT
            # mapper another netlist: 11,856 LUT4 and 146.3 MHz against 11,753 and 149.9)
            nxt_load_f = mid_valid & (~nxt_valid | take_f)
            nxt_valid_n = Mux(nxt_load_f, 1, Mux(take_f, 0, nxt_valid))
            pend_tick_n = Mux(run_start, 0, Mux(shadow_load_f, pend_tick, Mux(slot_load_f & pend_tick, 0,
                                                Mux(take_f & nxt.has_drops, nxt.has_tick, pend_tick))))
            hit_n = Mux(run_start, 0, ~shadow_load_f & lag_hit)
            behind_n = Mux(run_start, 0, Mux(shadow_load_f, ack_late, behind | ack_late))
            ready_n = active_n & room_n
            return {
                "hit": hit_n,
                "ok_shadow": ready_n & (hit_n | (behind_n & idle_late_n)),
                "ok_entry": ready_n & ~hit_n & ~pend_tick_n & nxt_valid_n,
                "ok_slot": ready_n & ~hit_n & ~(behind_n & idle_late_n) & (pend_tick_n | nxt_valid_n),
            }

        # The queue's write strobe (a tick, or a drop-only entry) is a register too,
        # formed from the next values of what it reads: it drives the 14 block RAMs'
        # write enables and the level's logic, a long route from the registers it was a
        # LUT of.
        pending_nz_n = Mux(run_start, 0, Mux(q_wen, 0, pending_nz) | drop_now)
        w_rdy_n = Mux(take, take_n["w_rdy"], hold_n["w_rdy"])
        m.d.sync += q_wen.eq(w_rdy_n & ((running & self.i_ticks.valid) | (active_n & pending_nz_n)))

        busy_n, free_n = next_decision(0), next_decision(1)
        _select_formed(m, free, {"hit": hit, "ok_shadow": ok_shadow, "ok_entry": ok_entry, "ok_slot": ok_slot},
                       busy_n, free_n, ("if_busy", "if_free"))

        # ---------------------------------------------------------- simulation checks
        if self.checks:
            # In the sync domain: checked once per clock edge on settled values (a comb
            # Assert would also see the simulator's intermediate evaluations).
            lo = Cat(Const(0, SLOT_SHIFT), base)
            size = Cat(Const(0, SLOT_SHIFT), mask) + SLOT_SIZE
            with m.If(bus.awvalid & ~cur_shadow):
                m.d.sync += Assert((bus.awaddr >= lo) & (bus.awaddr + SLOT_SIZE <= lo + size)
                                   & (bus.awaddr[:SLOT_SHIFT] == 0),
                                   "ring write outside [base, base + nslots*64)")
            with m.If(bus.awvalid & cur_shadow):
                m.d.sync += Assert(bus.awaddr == Cat(Const(0, 3), sh_addr), "shadow write elsewhere")
            with m.If(q_wen):
                m.d.sync += Assert(w_rdy, "queue written while full")
            m.d.sync += Assert(slot_load == (~shadow_load & ((slot_load & pend_tick) | take)),
                               "ring position moved without a slot load, or not with one")
            m.d.sync += Assert((full == (do_valid & mid_valid & nxt_valid)) & (mid_nxt == (mid_valid & nxt_valid)),
                               "queue level registers out of step")
            # (``shadowed`` holds the last run's value until this run's first shadow write)
            shadowed_ok = Signal()
            with m.If(shadow_load):
                m.d.sync += shadowed_ok.eq(1)
            with m.If(run_start):
                m.d.sync += shadowed_ok.eq(0)
            m.d.sync += Assert(lag[32] | (lag == Mux(shadowed_ok, head - shadowed, head)[:33]),
                               "lag is not head - shadowed")
            m.d.sync += Assert((awv_c == awv) & (wv_c == wv), "AWVALID/WVALID copies out of step")
            m.d.sync += Assert(q_wen == (w_rdy & (offered | (active & pending_nz))), "q_wen out of step")
            ready = active & room
            m.d.sync += Assert((ok_shadow == (ready & (hit | (behind & idle_late))))
                               & (ok_entry == (ready & ~hit & ~pend_tick & nxt_valid))
                               & (ok_slot == (ready & ~hit & ~(behind & idle_late) & (pend_tick | nxt_valid))),
                               "a decision register differs from the registers it was formed from")
            m.d.sync += Assert((running == (state == DMAState.RUN))
                               & (active == ((state == DMAState.RUN) | (state == DMAState.DRAIN))),
                               "state decode registers out of step")
        return m
