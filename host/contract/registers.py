"""The register map: every register of the device, as data.

The gateware builds its AXI4-Lite register file from :data:`REGISTERS`
(:class:`wiretick.hdl.regs.RegisterFile`); host drivers read and write the device
by name through it (:class:`RegisterClient`, :class:`wiretick.host.device.Device`,
and the software devices that answer the same map); docs/registers.md is
generated from it (``python -m wiretick.host.docgen``).

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

The nanosecond clock that fills ``ts_rx`` is free-running from reset; ``CLOCK``
reads its value at the last snapshot, ``CLOCK_PERIOD_FS`` says how fast it
advances.  The DMA configuration registers take effect when ``ENABLE`` rises
(docs/ring.md): program them first.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from .formats import COUNTERS
from .ring import OFF_HEAD, SLOT_SIZE

__all__ = [
    "Register", "REGISTERS", "REG_BY_NAME", "ACCESS", "MAP_SIZE", "COUNTER_BASE", "REG_ID", "REG_VERSION",
    "DMA_OFF", "DMA_RUNNING", "DMA_DRAINING", "DMA_REFUSED", "DMA_STATE_NAMES",
    "counter_register", "words", "markdown_table",
    "COUNTER_BITS", "WIDE_COUNTERS", "COUNTER_NOTE", "CounterExtender", "RegisterClient",
]

#: ``ID`` register value: ASCII "WTK1": every wiretick design answers it.
REG_ID = 0x5754_4B31
#: ``VERSION``: major << 16 | minor.  The major changes when an offset or a meaning changes
#: (2: event counters are 32 bits, extended by the host; 2.1 adds the late-join registers).
REG_VERSION = (2 << 16) | 1

ACCESS = ("const", "ro", "rw", "wo", "snap")

#: Values of ``DMA_STATE``, the DMA engine's run state (docs/ring.md).
DMA_OFF, DMA_RUNNING, DMA_DRAINING, DMA_REFUSED = 0, 1, 2, 3
DMA_STATE_NAMES = {DMA_OFF: "off", DMA_RUNNING: "running", DMA_DRAINING: "draining",
                   DMA_REFUSED: "configuration refused"}


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
(`wiretick.host.contract.registers.CounterExtender`; `Device.counters()` and `Device.snapshot()`
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
    Register("DMA_STATE", 0x028, 2, "ro", ", ".join(f"{v} {n}" for v, n in DMA_STATE_NAMES.items())
             + " (misaligned)"),
    # -- ring
    Register("RING_BASE", 0x030, 64, "rw", f"bus address of slot 0; {SLOT_SIZE}-byte aligned (4 KiB recommended)"),
    Register("RING_LOG2", 0x038, 6, "rw", f"log2 of the number of {SLOT_SIZE}-byte slots", 12),
    Register("SHADOW_ADDR", 0x040, 64, "rw", "bus address of the 8-byte shadow head (8-byte aligned): "
             f"offset {OFF_HEAD} of the ring's control page"),
    Register("SHADOW_INTERVAL", 0x048, 32, "rw", "write the shadow head every this many slots "
             "(and whenever the engine idles); 0: only when idle", 64),
    # -- parser configuration
    Register("IP_DST", 0x050, 32, "rw", "IPv4 destination address accepted (0: any)"),
    Register("PORT", 0x054, 16, "rw", "UDP destination port accepted (0: any)"),
    Register("CHECK_IP_CHECKSUM", 0x058, 1, "rw", "1: drop frames with a bad IPv4 header checksum", 1),
    Register("SEQUENCE_CHECK", 0x05C, 1, "rw", "1: drop duplicates and report gaps by MoldUDP64 sequence number", 1),
    # -- late join (docs/reference-model.md, "Joining mid-stream"): applied at a run's start
    Register("JOIN", 0x060, 1, "rw", "1: every run starts from the JOIN_* sequence state instead of the empty one "
             "(loaded the cycle after the parser's reset at the run's start, while no frame is in it)"),
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
