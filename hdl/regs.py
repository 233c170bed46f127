"""The register map, once, and the AXI4-Lite register file built from it.

The top of this module is plain Python data (no Amaranth needed to import it):
:data:`REGISTERS` lists every register as ``(name, offset, width, access, doc)``
(plus a reset value).  The gateware (:class:`RegisterFile`), the documentation
(:func:`markdown_table`) and host drivers (:class:`RegisterClient`) all read it.

Bus
---
AXI4-Lite, 32-bit data, byte addresses; every register starts on a 32-bit word.
A register of ``width`` <= 32 bits is one word (zero-extended on reads, upper
bits ignored on writes); a 64-bit register is two words, the low half at
``offset`` and the high half at ``offset + 4``.  Byte strobes are honoured.
Unmapped words read as 0 and ignore writes; every response is OKAY.

Access
------
``const``
    read-only, fixed when the design is built (identification, build parameters).
``ro``
    read-only, live.
``rw``
    read/write configuration; reads return what was written (reset: ``init``).
``wo``
    write-only command: any write triggers it; reads return 0.
``snap``
    read-only, latched: a write to ``SNAPSHOT`` copies every ``snap`` register at
    once (same clock cycle), so the counters, the clock and the DMA status read
    afterwards are one consistent picture, whatever the reads' order or spacing.
    ``snap`` registers read 0 until the first snapshot.

Counters
--------
Event counters (``wraps``) are 32 bits in hardware; the host extends them to
64 bits (:class:`CounterExtender`).  :data:`COUNTER_NOTE` says how, and how
often a host must read them.

The nanosecond clock that fills ``ts_rx`` (``timestamp`` out of the register
file, see :class:`wiretick.hdl.clock.NsClock`) is free-running from reset;
``CLOCK`` reads its value at the last snapshot, ``CLOCK_PERIOD_FS`` says how fast
it advances.  The DMA configuration registers take effect when ``ENABLE`` rises
(see :mod:`wiretick.hdl.dma`): program them first.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from wiretick.host.contract.formats import COUNTERS

__all__ = [
    "Register", "REGISTERS", "REG_BY_NAME", "ACCESS", "COUNTER_BASE", "REG_ID", "REG_VERSION",
    "counter_register", "words", "markdown_table",
    "COUNTER_BITS", "WIDE_COUNTERS", "COUNTER_NOTE", "CounterExtender", "registers_doc", "RegisterClient",
    "RegisterFile",
    "REGS_WAIVERS", "regs_verilog", "lint_regs",
]

#: ``ID`` register value: ASCII "WTK1" (as host/device.py's DEVICE_ID).
REG_ID = 0x5754_4B31
#: ``VERSION``: major << 16 | minor.  The major changes when an offset or a meaning changes
#: (2: event counters are 32 bits, extended by the host; 2.1 adds the late-join registers).
REG_VERSION = (2 << 16) | 1

ACCESS = ("const", "ro", "rw", "wo", "snap")


class Register(NamedTuple):
    """One register: ``width`` bits at byte ``offset`` (see the module documentation).

    ``wraps``: an event counter that counts modulo ``2**width``; the host extends it.
    """

    name: str
    offset: int
    width: int
    access: str
    doc: str
    init: int = 0
    wraps: bool = False


#: Offset of the first parser counter; counter ``i`` of ``formats.COUNTERS`` is at ``+ 8*i``.
COUNTER_BASE = 0x100
#: Width of the event counters in hardware (``wraps`` registers); the host extends them to 64 bits.
COUNTER_BITS = 32
#: Parser counters that stay 64 bits: they can grow by more than 2**32 at once (a whole gap).
WIDE_COUNTERS = ("gap_messages",)

#: How the event counters wrap and are extended (docs/registers.md).
COUNTER_NOTE = """\
Event counters (the registers whose bits say *wraps*: the parser's `CNT_*` but
`CNT_gap_messages`, `PARSER_LOST`, and the DMA engine's drop and bus-error counts)
are 32 bits in hardware and count modulo 2^32, as LitePCIe's are.  The host extends each one to
64 bits: it adds the difference, modulo 2^32, from its previous read
(`wiretick.hdl.regs.CounterExtender`; `Device.counters()` and `Device.snapshot()`
do it, from 0 at the start of each run).  That is exact, and monotonic, as long
as fewer than 2^32 events are counted between two reads:

- every counter but `unknown_type` counts at most one event a cycle: 2^32 cycles,
  27.5 s at 156.25 MHz;
- `unknown_type`: 3-byte unknown blocks back to back at 10 Gb/s line rate wrap it
  in 10.3 s.

`CNT_gap_messages` is 64 bits and does not wrap: one gap event adds the whole gap,
which a broken or hostile feed can make larger than 2^32.

**A host reads the counters (`Device.counters()` or `Device.snapshot()`) at least
every 5 seconds.**  Each counter keeps its 8-byte slot; the high word reads 0.
"""

REGISTERS: tuple[Register, ...] = (
    # -- identification and build parameters
    Register("ID", 0x000, 32, "const", 'identifies the design: 0x57544B31 (ASCII "WTK1")', REG_ID),
    Register("VERSION", 0x004, 32, "const", "register map version: major << 16 | minor", REG_VERSION),
    Register("DMA_DATA_WIDTH", 0x008, 16, "const", "AXI data width of the DMA engine, bits"),
    Register("DMA_FIFO_DEPTH", 0x00C, 32, "const", "ticks the DMA engine can queue while the bus stalls"),
    Register("CLOCK_PERIOD_FS", 0x010, 32, "const", "CLOCK advances by this many femtoseconds per cycle"),
    Register("N_COUNTERS", 0x014, 16, "const", "number of parser counters (CNT_*, from COUNTER_BASE = 0x100)",
             len(COUNTERS)),
    Register("DMA_MAX_LOG2", 0x018, 8, "const", "largest RING_LOG2 the engine honours (larger values are clamped)"),
    # -- control
    Register("ENABLE", 0x020, 1, "rw", "1: run the DMA engine (rising edge: sample the ring configuration, "
             "seq restarts at 1); 0: drain and stop"),
    Register("SNAPSHOT", 0x024, 1, "wo", "any write latches every snap register at once"),
    Register("DMA_STATE", 0x028, 2, "ro", "0 off, 1 running, 2 draining, 3 configuration refused (misaligned)"),
    # -- ring
    Register("RING_BASE", 0x030, 64, "rw", "bus address of slot 0; 64-byte aligned (4 KiB recommended)"),
    Register("RING_LOG2", 0x038, 6, "rw", "log2 of the number of 64-byte slots", 12),
    Register("SHADOW_ADDR", 0x040, 64, "rw", "bus address of the 8-byte shadow head (8-byte aligned): "
             "offset 64 of the ring's control page"),
    Register("SHADOW_INTERVAL", 0x048, 32, "rw", "write the shadow head every this many slots "
             "(and whenever the engine idles); 0: only when idle", 64),
    # -- parser configuration
    Register("IP_DST", 0x050, 32, "rw", "IPv4 destination address accepted (0: any)"),
    Register("PORT", 0x054, 16, "rw", "UDP destination port accepted (0: any)"),
    Register("CHECK_IP_CHECKSUM", 0x058, 1, "rw", "1: drop frames with a bad IPv4 header checksum", 1),
    Register("SEQUENCE_CHECK", 0x05C, 1, "rw", "1: drop duplicates and report gaps by MoldUDP64 sequence number", 1),
    # -- late join (docs/reference-model.md, "Joining mid-stream"): applied at a run's start
    Register("JOIN", 0x060, 1, "rw", "1: every run starts from the JOIN_* sequence state instead of the empty one "
             "(loaded the cycle after the run's start, while no frame is in the parser)"),
    Register("JOIN_HAS_SESSION", 0x064, 1, "rw", "1: JOIN_SESSION is tracked; 0: none is (the first packet "
             "starts tracking its own)"),
    Register("JOIN_SESSION", 0x068, 64, "rw", "tracked MoldUDP64 session, wire bytes 0..7 (byte k in bits 8k..8k+7)"),
    Register("JOIN_SESSION_HI", 0x070, 16, "rw", "tracked MoldUDP64 session, wire bytes 8..9"),
    Register("JOIN_EXPECTED", 0x078, 64, "rw", "the next MoldUDP64 message number not yet delivered"),
    # -- status, latched by SNAPSHOT
    Register("CLOCK", 0x080, 64, "snap", "nanosecond clock (the ts_rx of ticks)"),
    Register("DMA_HEAD", 0x088, 64, "snap", "ring slots written and acknowledged in this run "
             "(= seq of the last one; the shadow head)"),
    Register("DMA_DROPPED", 0x090, COUNTER_BITS, "snap",
             "parser ticks dropped by the DMA engine (FIFO overflow) in this run", wraps=True),
    Register("DMA_DROP_EVENTS", 0x098, COUNTER_BITS, "snap", "drop events written in this run", wraps=True),
    Register("DMA_BUS_ERRORS", 0x0A0, COUNTER_BITS, "snap", "write responses SLVERR/DECERR in this run",
             wraps=True),
    Register("PARSER_LOST", 0x0A8, COUNTER_BITS, "snap", "ticks the parser dropped because its output was stalled",
             wraps=True),
    Register("JOIN_SEQ", 0x0B0, 64, "rw", "the parser's seq of the run's first tick with JOIN (what abort events "
             "refer to; the ring's seq still starts at 1)", 1),
) + tuple(
    Register(f"CNT_{c.name}", COUNTER_BASE + 8 * i, 64, "snap", c.doc) if c.name in WIDE_COUNTERS else
    Register(f"CNT_{c.name}", COUNTER_BASE + 8 * i, COUNTER_BITS, "snap", c.doc, wraps=True)
    for i, c in enumerate(COUNTERS)
)

REG_BY_NAME: dict[str, Register] = {r.name: r for r in REGISTERS}


def counter_register(name: str) -> Register:
    """The register of parser counter ``name`` (a ``formats.COUNTERS`` name)."""
    return REG_BY_NAME[f"CNT_{name}"]


def words(reg: Register) -> list[int]:
    """Byte offsets of the 32-bit words of ``reg``, least significant first."""
    return [reg.offset + 4 * i for i in range((reg.width + 31) // 32)]


def _check() -> None:
    used: dict[int, str] = {}
    for r in REGISTERS:
        if r.access not in ACCESS:
            raise AssertionError(f"{r.name}: access {r.access!r}")
        if r.offset % 4 or not 1 <= r.width <= 64 or (r.width > 32 and r.offset % 8):
            raise AssertionError(f"{r.name}: offset {r.offset:#x} / width {r.width}")
        if r.init >> r.width:
            raise AssertionError(f"{r.name}: init {r.init:#x} wider than {r.width} bits")
        if r.wraps and (r.access != "snap" or r.width != COUNTER_BITS):
            raise AssertionError(f"{r.name}: only {COUNTER_BITS}-bit snap registers wrap")
        for w in words(r):
            if w in used:
                raise AssertionError(f"{r.name} overlaps {used[w]} at {w:#x}")
            used[w] = r.name
    if len(REG_BY_NAME) != len(REGISTERS):
        raise AssertionError("duplicate register names")


_check()

#: Bytes of address space the map needs.
MAP_SIZE = max(words(r)[-1] for r in REGISTERS) + 4


#: ``const`` registers whose value is the same in every build (the others are build parameters).
_FIXED_CONSTANTS = ("ID", "VERSION", "N_COUNTERS")


def markdown_table() -> str:
    """The register map as a Markdown table (for docs)."""
    lines = ["| offset | name | bits | access | reset | meaning |", "|---:|---|---:|---|---:|---|"]
    for r in REGISTERS:
        if r.access == "const" and r.name not in _FIXED_CONSTANTS:
            init = "build"          # a build parameter of the design
        else:
            init = f"{r.init:#x}" if r.init > 9 else str(r.init)
        doc = r.doc.replace("|", "\\|")
        bits = f"{r.width} wraps" if r.wraps else str(r.width)
        lines.append(f"| {r.offset:#05x} | `{r.name}` | {bits} | {r.access} | {init} | {doc} |")
    return "\n".join(lines) + "\n"


def registers_doc() -> str:
    """docs/registers.md: the table and :data:`COUNTER_NOTE`."""
    return (
        "# Register map\n\n"
        "<!-- Generated from wiretick/hdl/regs.py by `python -m wiretick.hdl.regs > docs/registers.md`: "
        "do not edit. -->\n\n"
        f"AXI4-Lite, 32-bit words, byte offsets; map version {REG_VERSION >> 16}.{REG_VERSION & 0xFFFF}.  "
        "A 64-bit register is two words, low half first.  `snap` registers hold their value at the "
        "last write to `SNAPSHOT` (all latched in the same cycle); unmapped words read 0.\n\n"
        + markdown_table() + "\n## Counters\n\n" + COUNTER_NOTE)


class CounterExtender:
    """The host side of the ``wraps`` registers: 32-bit readings extended to 64-bit counts.

    Each reading adds its difference, modulo ``2**width``, from the previous
    reading of the same register (see :data:`COUNTER_NOTE` for how often to
    read).  :meth:`reset` when the device starts a run (its counters restart at 0).
    """

    def __init__(self):
        self._count: dict[str, int] = {}

    def reset(self) -> None:
        self._count.clear()

    def extend(self, name: str, raw: int) -> int:
        """The 64-bit count of register ``name`` read as ``raw`` (other registers: ``raw``)."""
        reg = REG_BY_NAME[name]
        if not reg.wraps:
            return raw
        last = self._count.get(name, 0)
        value = last + ((raw - last) & ((1 << reg.width) - 1))
        self._count[name] = value
        return value

    def extend_all(self, values: dict[str, int]) -> dict[str, int]:
        return {name: self.extend(name, raw) for name, raw in values.items()}


class RegisterClient:
    """Host-side access by name over any 32-bit read/write functions (mmap, a simulator, ...).

    64-bit registers are two word accesses, low half first; read them after
    :meth:`snapshot` when they are ``snap`` registers (consistent by construction).
    """

    def __init__(self, read32: Callable[[int], int], write32: Callable[[int, int], None]):
        self.read32 = read32
        self.write32 = write32

    def read(self, name: str) -> int:
        reg = REG_BY_NAME[name]
        value = 0
        for i, off in enumerate(words(reg)):
            value |= (self.read32(off) & 0xFFFF_FFFF) << (32 * i)
        return value

    def write(self, name: str, value: int) -> None:
        reg = REG_BY_NAME[name]
        if reg.access not in ("rw", "wo"):
            raise ValueError(f"{name} is {reg.access}, not writable")
        if value >> reg.width:
            raise ValueError(f"{value:#x} does not fit the {reg.width} bits of {name}")
        for i, off in enumerate(words(reg)):
            self.write32(off, (value >> (32 * i)) & 0xFFFF_FFFF)

    def snapshot(self) -> dict[str, int]:
        """Latch, then read every ``snap`` register: {name: value}."""
        self.write("SNAPSHOT", 1)
        return {r.name: self.read(r.name) for r in REGISTERS if r.access == "snap"}

    def counters(self) -> dict[str, int]:
        """A consistent snapshot of the parser counters, by ``formats.COUNTERS`` name."""
        snap = self.snapshot()
        return {c.name: snap[counter_register(c.name).name] for c in COUNTERS}


# =========================================================================== gateware

try:
    from amaranth.hdl import Const, Module, Mux, Signal, Value, unsigned
    from amaranth.lib import data, wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out
    _Component = wiring.Component
except ImportError:  # pragma: no cover - a host without Amaranth still reads the map above
    _Component = object

_SNAP_PORTS = {   # snap registers fed by a port (the counters come as one array, CLOCK from inside)
    "DMA_HEAD": "dma_head", "DMA_DROPPED": "dma_dropped", "DMA_DROP_EVENTS": "dma_drop_events",
    "DMA_BUS_ERRORS": "dma_bus_errors", "PARSER_LOST": "parser_lost",
}


class RegisterFile(_Component):
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
    then a word is selected within each group of 16 words into a register, then the
    group is selected.
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
        # per group, and the cycle after selects the group.  ``snap`` words read 0
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
            # Each group selects on its own copy of the address (``keep``: not merged),
            # so that no address bit drives every group's tree.
            sel = Signal(low, name=f"raddr_g{g // group_words}", attrs={"keep": 1})
            with m.If(bus.arvalid & bus.arready):
                m.d.sync += sel.eq(bus.araddr[2:2 + low])
            value = tree(word_at[g:g + group_words], sel, low - 1)
            reg = Signal(32, name=f"rgroup{g // group_words}")
            m.d.sync += reg.eq(value)
            group_at.append(reg)
        rhigh = Signal(len(raddr) - low)
        zero = Signal()                 # outside the map, or a snap word before the first snapshot
        is_snap = Value.cast(tree(snap_at, raddr, len(raddr) - 1))
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [raddr.eq(bus.araddr[2:]), rpend.eq(1),
                         outside.eq(bus.araddr[2 + len(raddr):] != 0)]
        with m.If(rpend):
            m.d.sync += [rpend.eq(0), rstage.eq(1), rhigh.eq(raddr[low:]),
                         zero.eq(outside | (is_snap & ~snapped))]
        with m.If(rstage):
            word = tree(group_at, rhigh, len(rhigh) - 1) if len(rhigh) else group_at[0]
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


# =========================================================================== lint

#: The register file's own waivers (the bus port's unused inputs), each with its reason.
REGS_WAIVERS = """\
// AxPROT carries privilege/security attributes; every register is open to every
// access, so the register file has no use for them.
lint_off -rule UNUSEDSIGNAL -file "*" -match "*'bus__awprot'*"
lint_off -rule UNUSEDSIGNAL -file "*" -match "*'bus__arprot'*"
// Registers are 32-bit words: the byte within the word is given by WSTRB (writes)
// and is the whole word (reads), so address bits 1..0 select nothing.
lint_off -rule UNUSEDSIGNAL -file "*" -match "*Bits of signal are not used: 'bus__awaddr'[1:0]*"
lint_off -rule UNUSEDSIGNAL -file "*" -match "*Bits of signal are not used: 'bus__araddr'[1:0]*"
"""


def regs_verilog(top: str = "wiretick_regs", **kw) -> str:
    """Verilog of :class:`RegisterFile` (``kw`` to its constructor)."""
    from amaranth.back import verilog
    return verilog.convert(RegisterFile(**kw), name=top)


def lint_regs(top: str = "wiretick_regs", **kw) -> str:
    """Lint :class:`RegisterFile`; raise :class:`wiretick.sim.verilator.LintError` on findings."""
    from .dma import lint_hierarchy
    return lint_hierarchy(regs_verilog(top, **kw), top, REGS_WAIVERS)


if __name__ == "__main__":      # python -m wiretick.hdl.regs > docs/registers.md
    print(registers_doc(), end="")
