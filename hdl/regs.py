"""The AXI4-Lite register file, built from the register map of the contract.

The map itself (names, offsets, widths, access, reset values, the counter block)
is :mod:`wiretick.host.contract.registers`; docs/registers.md describes the bus
and every register.  This module turns the map into gateware: ``rw`` registers
become output ports (by lower-case name), ``ro`` and ``snap`` registers input
ports, ``const`` registers the build parameters given to :class:`RegisterFile`.

The nanosecond clock that fills ``ts_rx`` (``timestamp`` out of the register
file, see :class:`wiretick.hdl.clock.NsClock`) is free-running from reset.  The
DMA configuration registers take effect when ``ENABLE`` rises (see
:mod:`wiretick.hdl.dma`).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import COUNTERS
from wiretick.host.contract.registers import (COUNTER_BASE, COUNTER_BITS, MAP_SIZE, REG_BY_NAME, REGISTERS, Register,
                                              words)

__all__ = ["RegisterFile"]

_SNAP_PORTS = {   # snap registers fed by a port (the counters come as one array, CLOCK from inside)
    "DMA_HEAD": "dma_head", "DMA_DROPPED": "dma_dropped", "DMA_DROP_EVENTS": "dma_drop_events",
    "DMA_BUS_ERRORS": "dma_bus_errors", "PARSER_LOST": "parser_lost",
}


class RegisterFile(wiring.Component):
    """AXI4-Lite slave over :data:`REGISTERS`, with the nanosecond clock.

    Parameters
    ----------
    ns_per_cycle : int, Fraction or str
        Period of the clock domain, ns (the clock's increment per cycle).
    counter_bits : int
        Width of the parser's counters, at least :data:`COUNTER_BITS` (their low
        ``COUNTER_BITS`` are latched: the registers wrap at ``2**COUNTER_BITS``).
    dma_data_width, dma_fifo_depth, dma_max_log2 : int
        Build parameters of the DMA engine, reported by the ``const`` registers.
    addr_width : int
        AXI4-Lite address width (the map needs ``MAP_SIZE`` bytes).

    Attributes
    ----------
    bus : In(AXI4LiteSignature(addr_width, 32))
        The host's access.
    timestamp : Out(64)
        The nanosecond clock (to the parser and the DMA engine).
    enable, ring_base, ring_log2, shadow_addr, shadow_interval : Out
        DMA engine configuration (``rw`` registers, by lower-case name).
    ip_dst, port, check_ip_checksum, sequence_check : Out
        Parser configuration.
    join, join_has_session, join_session, join_session_hi, join_expected, join_seq : Out
        Late join: the sequence state a run starts from when ``join`` is 1.
    dma_state : In(2)
        Live DMA state.
    dma_head, dma_dropped, dma_drop_events, dma_bus_errors, parser_lost : In
        Status, latched by ``SNAPSHOT``.
    counters : In(ArrayLayout(counter_bits, len(COUNTERS)))
        The parser's counters, latched by ``SNAPSHOT``.
    snapshot : Out(1)
        Pulses for one cycle, the cycle after a write to ``SNAPSHOT`` is accepted (the
        latch happens on that cycle, before the write's B response can reach the host).

    Reads take three cycles from the AR handshake: the word address is registered,
    then a word is selected within each group of 16 words into a register (zero in
    every group but the address's), then the groups are ORed.
    """

    def __init__(self, *, ns_per_cycle=4, counter_bits: int = 64, dma_data_width: int = 512,
                 dma_fifo_depth: int = 64, dma_max_log2: int = 24, addr_width: int = 12):
        from .axi import AXI4LiteSignature
        from .clock import period_fs

        if (1 << addr_width) < MAP_SIZE:
            raise ValueError(f"the register map needs {MAP_SIZE} bytes: addr_width >= {(MAP_SIZE - 1).bit_length()}")
        if not COUNTER_BITS <= counter_bits <= 64:
            raise ValueError(f"counter_bits must be {COUNTER_BITS}..64: the counter registers wrap "
                             f"at 2**{COUNTER_BITS}, which is how the host extends them")
        self.ns_per_cycle = ns_per_cycle
        self.counter_bits = counter_bits
        self.addr_width = addr_width
        self.constants = {
            "DMA_DATA_WIDTH": dma_data_width,
            "DMA_FIFO_DEPTH": dma_fifo_depth,
            "CLOCK_PERIOD_FS": period_fs(ns_per_cycle),
            "DMA_MAX_LOG2": dma_max_log2,
        }
        for r in REGISTERS:
            if r.access == "const":
                value = self.constants.setdefault(r.name, r.init)
                if value >> r.width:
                    raise ValueError(f"{r.name} = {value} does not fit {r.width} bits")
        members = {
            "bus": In(AXI4LiteSignature(addr_width=addr_width, data_width=32)),
            "timestamp": Out(64),
            "snapshot": Out(1),
            "counters": In(data.ArrayLayout(unsigned(counter_bits), len(COUNTERS))),
        }
        for r in REGISTERS:
            if r.access == "rw":
                members[r.name.lower()] = Out(r.width, init=r.init)
            elif r.access == "ro":
                members[r.name.lower()] = In(r.width)
        for name, port in _SNAP_PORTS.items():
            members[port] = In(REG_BY_NAME[name].width)
        super().__init__(members)

    def _snap_source(self, reg: Register, clock):
        if reg.name == "CLOCK":
            return clock
        if reg.name in _SNAP_PORTS:
            return getattr(self, _SNAP_PORTS[reg.name])
        if reg.name.startswith("CNT_"):
            return self.counters[(reg.offset - COUNTER_BASE) // 8]
        raise AssertionError(f"no source for snap register {reg.name}")

    def elaborate(self, platform):
        from .clock import NsClock

        m = Module()
        bus = self.bus
        m.submodules.clock = clock = NsClock(self.ns_per_cycle)
        m.d.comb += self.timestamp.eq(clock.ns)

        # Latched copies of the snap registers, kept in memories (a few registers to
        # a word) written on SNAPSHOT.  As registers, each would have a next value
        # that holds it on every other cycle, and since SNAPSHOT comes straight from
        # the bus inputs, a Verilated model recomputes all of them at every
        # evaluation (a tenth of its work); a memory write costs nothing while its
        # enable is low.  Words of at most 512 bits: Amaranth's Python simulator
        # spells a write out bit by bit, and a much wider word overflows Python's
        # compiler.  Memories are not reset: ``snapped`` (reset to 0, set by a
        # snapshot) makes them read 0 until the first snapshot after reset, as
        # reset registers would.
        snapped = Signal()
        snap_req = Signal()             # the bus wrote SNAPSHOT; the latch is next cycle
        m.d.sync += self.snapshot.eq(snap_req)
        with m.If(self.snapshot):
            m.d.sync += snapped.eq(1)
        groups = [[]]
        for r in REGISTERS:
            if r.access == "snap":
                if sum(g.width for g in groups[-1]) + r.width > 512:
                    groups.append([])
                groups[-1].append(r)
        latched = {}
        for k, group in enumerate(groups):
            mem = Memory(shape=data.StructLayout({r.name: unsigned(r.width) for r in group}), depth=1, init=[{}])
            m.submodules[f"snap_mem{k}"] = mem
            wr = mem.write_port()
            m.d.comb += wr.en.eq(self.snapshot)
            for r in group:
                m.d.comb += wr.data[r.name].eq(self._snap_source(r, clock.ns)[:r.width])
            stored = mem.read_port(domain="comb").data
            latched.update({r.name: stored[r.name] for r in group})

        # ------------------------------------------------------------ reads
        def read_value(r: Register):
            if r.access == "const":
                return Const(self.constants[r.name], r.width)
            if r.access == "rw":
                return getattr(self, r.name.lower())
            if r.access == "ro":
                return getattr(self, r.name.lower())
            if r.access == "snap":
                return latched[r.name]
            return Const(0, r.width)     # wo

        # The AR handshake registers the word address; the next cycle selects a word
        # within each group of 16 (a binary multiplexer tree; unmapped words are
        # constant 0 and fold away, as do groups with nothing mapped) into a register
        # per group, and the cycle after ORs the groups.  ``snap`` words read 0
        # until the first snapshot after reset.  The data is on R three cycles after
        # the AR handshake.
        n_words = 1 << (MAP_SIZE - 1).bit_length() - 2
        word_at: list = [Const(0, 32)] * n_words
        snap_at: list = [False] * n_words
        for r in REGISTERS:
            value = read_value(r)
            for i, off in enumerate(words(r)):
                word_at[off >> 2] = value[32 * i:32 * i + 32]
                snap_at[off >> 2] = r.access == "snap"

        raddr = Signal(range(n_words))
        rpend = Signal()                # an address is registered; the groups are selected next
        rstage = Signal()               # the groups' words are registered; rdata is loaded next
        rvalid = Signal()
        rdata = Signal(32)
        outside = Signal()              # the address is past the map's power of two: read 0
        m.d.comb += [
            bus.arready.eq(~rpend & ~rstage & ~rvalid),
            bus.rvalid.eq(rvalid),
            bus.rdata.eq(rdata),
            bus.rresp.eq(0),
        ]

        def tree(items: list, sel, bit: int):
            if len(items) == 1:
                return items[0]
            half = len(items) // 2
            lo, hi = tree(items[:half], sel, bit - 1), tree(items[half:], sel, bit - 1)
            if isinstance(lo, bool) and isinstance(hi, bool) and lo == hi:
                return lo
            if isinstance(lo, Const) and isinstance(hi, Const) and lo.value == hi.value:
                return lo
            return Mux(sel[bit], hi, lo)

        low = min(4, len(raddr))
        group_words = 1 << low
        group_at: list = []
        for g in range(0, n_words, group_words):
            if all(isinstance(w_, Const) and w_.value == 0 for w_ in word_at[g:g + group_words]):
                group_at.append(Const(0, 32))
                continue
            # Each group selects on its own copy of the address, so that no address bit
            # drives every group's tree.  Identical registers would be merged by
            # synthesis (a ``keep`` on the wire does not stop it), so each copy holds the
            # low address bits only when the address is in its group (zero otherwise,
            # when its output is not used): a function of its own.
            sel = Signal(low, name=f"raddr_g{g // group_words}")
            hit = Signal(name=f"rhit_g{g // group_words}")
            in_group = bus.araddr[2 + low:2 + len(raddr)] == g // group_words
            with m.If(bus.arvalid & bus.arready):
                m.d.sync += [sel.eq(Mux(in_group, bus.araddr[2:2 + low], 0)), hit.eq(in_group)]
            value = tree(word_at[g:g + group_words], sel, low - 1)
            # A group's register holds its word only when the address is in the group
            # (the flip-flops' own synchronous reset clears it otherwise), so the
            # groups are ORed rather than selected.
            reg = Signal(32, name=f"rgroup{g // group_words}")
            m.d.sync += reg.eq(Mux(hit, value, 0))
            group_at.append(reg)
        zero = Signal()                 # outside the map, or a snap word before the first snapshot
        is_snap = Value.cast(tree(snap_at, raddr, len(raddr) - 1))
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [raddr.eq(bus.araddr[2:]), rpend.eq(1),
                         outside.eq(bus.araddr[2 + len(raddr):] != 0)]
        with m.If(rpend):
            m.d.sync += [rpend.eq(0), rstage.eq(1), zero.eq(outside | (is_snap & ~snapped))]
        with m.If(rstage):
            word = Const(0, 32)
            for reg in group_at:
                word = word | reg
            m.d.sync += [rstage.eq(0), rvalid.eq(1), rdata.eq(Mux(zero, 0, word))]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)

        # ------------------------------------------------------------ writes
        bvalid = Signal()
        do_write = bus.awvalid & bus.wvalid & ~bvalid
        m.d.comb += [
            bus.awready.eq(do_write),
            bus.wready.eq(do_write),
            bus.bvalid.eq(bvalid),
            bus.bresp.eq(0),
        ]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)
        with m.If(do_write):
            m.d.sync += bvalid.eq(1)
            with m.Switch(bus.awaddr[2:]):
                for r in REGISTERS:
                    if r.access == "wo":
                        with m.Case(r.offset >> 2):
                            if r.name == "SNAPSHOT":
                                m.d.comb += snap_req.eq(1)
                        continue
                    if r.access != "rw":
                        continue
                    target = getattr(self, r.name.lower())
                    for i, off in enumerate(words(r)):
                        with m.Case(off >> 2):
                            for b in range(4):
                                lo = 32 * i + 8 * b
                                if lo >= r.width:
                                    break
                                hi = min(lo + 8, r.width)
                                with m.If(bus.wstrb[b]):
                                    m.d.sync += target[lo:hi].eq(bus.wdata[8 * b:8 * b + hi - lo])
        return m
