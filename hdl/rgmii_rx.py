"""RGMII receive front end: PHY pins (1000BASE-T, DDR) to the MAC beat stream in another clock domain.

::

    rx_data[4], rx_ctl ─▶ [DELAYG] ─▶ IDDRX1F ─▶ SFD hunt, CRC-32, FCS strip ─▶ gearbox ─▶ async FIFO ─▶ o_mac
    (PHY rx clock: the ``rx_domain``)                                          8 bytes     (``domain``)

RGMII (v2.0) at 1 Gb/s sends a byte per cycle of the PHY's 125 MHz receive clock:
bits 3..0 on the rising edge, bits 7..4 on the falling edge; ``RX_CTL`` carries
``RX_DV`` on the rising edge and ``RX_ER xor RX_DV`` on the falling edge.  The
data must reach the input registers delayed about 2 ns from the clock (the PHY's
own setting, or :class:`~wiretick.hdl.ecp5io.DELAYG` in the FPGA: ``delay_taps``).
10/100 Mb/s modes are not supported (the feed and the host link run at 1 Gb/s).

Frames
------
A frame starts at the SFD (``0xD5``) after any number of preamble bytes
(``0x55``) while ``RX_DV`` is high, and ends when ``RX_DV`` falls.  The last four
bytes are the FCS; they are checked (CRC-32 of IEEE 802.3) and stripped.  The
frame's last beat carries ``error`` when the FCS is wrong, when ``RX_ER`` was
seen during the frame, or when the frame was longer than ``max_frame`` bytes
(its bytes past the limit are discarded, so the frame's beats still end with
``last``).  A frame whose data does not start with preamble/SFD is ignored
until ``RX_DV`` falls; one with no bytes besides its FCS is counted as bad and
delivers nothing.

Overflow
--------
The clock crossing is an asynchronous FIFO of ``fifo_depth`` beats
(:class:`_FrameCrossing`).  At each SFD the front end checks that the FIFO has room
for the longest frame (``max_frame`` bytes); if not, the whole frame is dropped
(nothing of it enters the FIFO) and counted in ``dropped``.  That check is the only
guard against overflow: the FIFO writes whatever it is given, so that its write side
is registers only.  The consumer therefore never sees part of a frame: every frame it
sees is whole and ends with ``last``.  With a consumer that is always ready at one
beat per cycle and a core clock above 15.6 MHz (1 Gb/s in 8-byte beats) the FIFO
never holds more than a few beats.

Counters
--------
``frames`` (delivered without error), ``bad`` (delivered with ``error``, or
no bytes), ``dropped`` (whole frames dropped on overflow) count in the receive
domain and cross to ``domain`` in Gray code (each changes at most once a frame,
tens of receive cycles apart, so the synchronised value is always a value the
counter held).  They are 32 bits and wrap.
"""

from __future__ import annotations

import zlib

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .common import mac_beat_layout
from .ecp5io import DELAYG, IDDRX1F
from .gray import gray_decode, gray_encode, gray_pointers

__all__ = ["RGMIIRx", "RGMIIPinsSignature", "crc32_step", "CRC_RESIDUE", "rgmii_symbols", "drive_rgmii",
           "with_fcs", "RGMII_PERIOD"]

#: 1000BASE-T RGMII clock period (125 MHz), seconds.
RGMII_PERIOD = 8e-9

_CRC_POLY = 0xEDB88320          # IEEE 802.3 CRC-32, bit-reversed (LSB first, as Ethernet sends)
#: The CRC register after a whole frame *and* its correct FCS (initial value all ones, no
#: final inversion): the check needs no knowledge of where the FCS starts.
CRC_RESIDUE = 0xDEBB20E3

#: 802.3 preamble byte and start-of-frame delimiter.
PREAMBLE, SFD = 0x55, 0xD5


def _crc_byte_sw(crc: int, byte: int) -> int:
    crc ^= byte
    for _ in range(8):
        crc = (crc >> 1) ^ (_CRC_POLY if crc & 1 else 0)
    return crc


def crc32_step(crc, byte):
    """One byte of CRC-32 as XOR equations: ``crc`` (32 bits) and ``byte`` (8) Amaranth values.

    The update is linear over GF(2); each output bit is the XOR of the state and data
    bits whose unit vectors set it (derived from the bit-serial definition).
    """
    terms = [[] for _ in range(32)]
    for i in range(32):
        out = _crc_byte_sw(1 << i, 0)
        for k in range(32):
            if out >> k & 1:
                terms[k].append(crc[i])
    for j in range(8):
        out = _crc_byte_sw(0, 1 << j)
        for k in range(32):
            if out >> k & 1:
                terms[k].append(byte[j])
    bits = []
    for t in terms:
        acc = t[0]
        for v in t[1:]:
            acc = acc ^ v
        bits.append(acc)
    return Cat(*bits)


assert _crc_byte_sw(0xFFFFFFFF, 0) != 0       # (sanity of the software step)


def with_fcs(frame: bytes) -> bytes:
    """``frame`` followed by its Ethernet FCS (CRC-32, least significant byte first)."""
    return frame + zlib.crc32(frame).to_bytes(4, "little")


class RGMIIPinsSignature(wiring.Signature):
    """An RGMII PHY's receive pins, from the PHY's side: ``rx_clk``, ``rx_ctl``, ``rx_data[4]`` outputs."""

    def __init__(self):
        super().__init__({"rx_clk": Out(1), "rx_ctl": Out(1), "rx_data": Out(4)})


class _FrameCrossing(wiring.Component):
    """An asynchronous FIFO whose write side is registers only: ``w_en`` writes, unconditionally.

    Amaranth's :class:`~amaranth.lib.fifo.AsyncFIFO` writes on ``w_en & w_rdy``: its full
    compare (the synchronised Gray read pointer against the write pointer), the pointer
    adder and the Gray encoder of the next write pointer were one path, the receive
    clock's critical path on the Colorlight (7.3-8.2 ns at speed 6, against 8).  Here
    the writer owns the room: it writes only when it has made sure there is room, from
    ``w_level`` (see :class:`RGMIIRx`: a frame is admitted only when the FIFO can hold it
    whole), so no full flag is needed.  ``w_level`` is registered from registers (the
    read pointer decoded a cycle after its synchroniser): it leaves out the writes of its
    last cycle, and counts beats the reader has already taken a few cycles longer (the
    safe side).

    The read side is AsyncFIFO's: ``r_data`` is the block RAM's output at the read
    pointer, ``r_rdy`` when it holds a beat, ``r_en`` takes it.  Pointers are Gray-coded
    across the domains (one more bit than the address).  Both domains must be reset
    together (the board resets every domain while its PLL is not locked).
    """

    def __init__(self, width: int, depth: int, *, w_domain: str, r_domain: str):
        self.depth = depth
        self.w_domain = w_domain
        self.r_domain = r_domain
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_level": Out(range(depth + 1)),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        bits = self.depth.bit_length()                  # address bits + 1
        wr, rd = m.d[self.w_domain], m.d[self.r_domain]
        m.submodules.storage = mem = Memory(shape=len(self.w_data), depth=self.depth, init=[])
        w_port = mem.write_port(domain=self.w_domain)
        r_port = mem.read_port(domain=self.r_domain)

        p = gray_pointers(m, bits, w_domain=self.w_domain, r_domain=self.r_domain)

        # write side: every signal below is a register or a register plus a constant
        w_next = (p.w_bin + self.w_en)[:bits]
        m.d.comb += [w_port.addr.eq(p.w_bin[:-1]), w_port.data.eq(self.w_data), w_port.en.eq(self.w_en)]
        wr += [p.w_bin.eq(w_next), p.w_gry.eq(gray_encode(w_next))]
        r_bin_w = Signal(bits)
        wr += [r_bin_w.eq(gray_decode(p.r_gry_w, balanced=True)), self.w_level.eq((p.w_bin - r_bin_w)[:bits])]

        # read side
        m.d.comb += self.r_rdy.eq(p.r_gry != p.w_gry_r)
        r_next = (p.r_bin + (self.r_en & self.r_rdy))[:bits]
        rd += [p.r_bin.eq(r_next), p.r_gry.eq(gray_encode(r_next))]
        m.d.comb += [r_port.addr.eq(r_next[:-1]), self.r_data.eq(r_port.data)]
        return m


class _State(enum.Enum, shape=2):
    HUNT = 0        # between frames, or in the preamble
    FRAME = 1       # after the SFD
    DROP = 2        # ignore bytes until RX_DV falls (no SFD, or no room for the frame)


class RGMIIRx(wiring.Component):
    """RGMII receive front end (1 Gb/s): DDR input registers, SFD, FCS, 64-bit beats, clock crossing.

    Parameters
    ----------
    domain : str
        The clock domain of ``o_mac`` and the counters.
    rx_domain : str
        The PHY's receive clock domain (its clock is the ``RX_CLK`` pin, created by the caller).
    delay_taps : int or None
        ``None`` when the PHY delays ``RX_CLK`` (RGMII-ID); else the :class:`DELAYG` delay
        on ``rx_ctl`` and ``rx_data`` (80 taps, about 2 ns, is RGMII's requirement).
    fifo_depth : int
        Beats in the clock crossing (a power of 2, at least the longest frame's beats plus 2).
    max_frame : int
        Longest frame delivered whole, bytes without FCS (2048: Ethernet with two VLAN tags
        and room); longer frames are cut at this length and flagged ``error``.

    Attributes
    ----------
    rx_ctl : In(1)
        The ``RX_CTL`` pin (from its input buffer).
    rx_data : In(4)
        The ``RXD[3:0]`` pins.
    o_mac : Out(stream.Signature(mac_beat_layout(8)))
        The frames, FCS stripped, in ``domain``; may be back-pressured (frames then drop whole).
    frames, bad, dropped : Out(32)
        Counters in ``domain`` (see the module documentation).
    """

    def __init__(self, *, domain: str = "sync", rx_domain: str = "rx", delay_taps: int | None = None,
                 fifo_depth: int = 512, max_frame: int = 2048):
        self.max_beats = -(-max_frame // 8)
        if fifo_depth & (fifo_depth - 1) or fifo_depth < self.max_beats + 2:
            self._MustUse__silence = True      # refused, so never meant to be elaborated
            raise ValueError(f"fifo_depth must be a power of 2 of at least {self.max_beats + 2} beats "
                             f"(max_frame {max_frame}), not {fifo_depth}")
        self.domain = domain
        self.rx_domain = rx_domain
        self.delay_taps = delay_taps
        self.fifo_depth = fifo_depth
        self.max_frame = max_frame
        super().__init__({
            "rx_ctl": In(1),
            "rx_data": In(4),
            "o_mac": Out(stream.Signature(mac_beat_layout(8))),
            "frames": Out(32),
            "bad": Out(32),
            "dropped": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        rx = m.d[self.rx_domain]

        # ---- pins: optional delay, DDR registers
        pins = Cat(self.rx_data, self.rx_ctl)
        if self.delay_taps is not None:
            m.submodules.delay = delay = DELAYG(5, taps=self.delay_taps)
            m.d.comb += delay.a.eq(pins)
            pins = delay.z
        m.submodules.iddr = iddr = IDDRX1F(5, domain=self.rx_domain)
        m.d.comb += iddr.d.eq(pins)
        # One fabric register after the I/O tile: the IDDRX1F outputs sit at the pins, the
        # logic they feed wherever the placer puts the front end (on the Versa build the
        # unregistered path was 7.7 ns, 6.5 of it routing from the pins).
        byte = Signal(8)
        dv = Signal()
        er = Signal()
        is_sfd = Signal()
        is_preamble = Signal()
        pin_byte = Cat(iddr.q0[:4], iddr.q1[:4])     # low nibble on the rising edge
        rx += [
            byte.eq(pin_byte),
            dv.eq(iddr.q0[4]),                        # RX_DV on the rising edge
            er.eq(iddr.q0[4] ^ iddr.q1[4]),           # RX_ER xor RX_DV on the falling edge
            is_sfd.eq(pin_byte == SFD),
            is_preamble.eq(pin_byte == PREAMBLE),
        ]

        # ---- stage 1: SFD hunt, CRC, the FCS held back four bytes
        state = Signal(_State)
        crc = Signal(32)
        hold = Signal(32)                             # the last 4 bytes, oldest in bits 0..7
        held = Signal(range(5))
        err = Signal()
        out_byte = Signal(8)
        out_valid = Signal()                          # out_byte is a frame byte (not FCS)
        out_end = Signal()                            # the frame ended (RX_DV fell)
        out_error = Signal()
        out_empty = Signal()                          # ...with no byte besides the FCS
        drop_pulse = Signal()

        fifo = _FrameCrossing(mac_beat_layout(8).size, self.fifo_depth, w_domain=self.rx_domain, r_domain=self.domain)
        m.submodules.fifo = fifo
        # Room for a whole frame (at most max_beats beats), as seen at an SFD.  room is a
        # cycle behind w_level, which leaves out its own last cycle's write, and the
        # previous frame's last pushes may come up to two cycles after the SFD (a one-cycle
        # gap): the writes of those four cycles are not counted.  At most two pushes fall
        # in any four cycles (full beats are eight cycles apart, the closing beat follows
        # the last), so two beats spare make the FIFO never overflow (it has no full flag).
        room = Signal()
        rx += room.eq(fifo.w_level <= self.fifo_depth - (self.max_beats + 2))

        rx += [out_valid.eq(0), out_end.eq(0), drop_pulse.eq(0)]
        with m.Switch(state):
            with m.Case(_State.HUNT):
                with m.If(dv):
                    with m.If(is_sfd):
                        with m.If(room):
                            rx += [state.eq(_State.FRAME), crc.eq(0xFFFFFFFF), held.eq(0), err.eq(er)]
                        with m.Else():
                            rx += [state.eq(_State.DROP), drop_pulse.eq(1)]
                    with m.Elif(~is_preamble):
                        rx += state.eq(_State.DROP)
            with m.Case(_State.FRAME):
                with m.If(dv):
                    rx += [
                        crc.eq(crc32_step(crc, byte)),
                        hold.eq(Cat(hold[8:], byte)),
                        err.eq(err | er),
                    ]
                    with m.If(held == 4):
                        rx += [out_byte.eq(hold[:8]), out_valid.eq(1)]
                    with m.Else():
                        rx += held.eq(held + 1)
                with m.Else():
                    rx += [
                        state.eq(_State.HUNT),
                        out_end.eq(1),
                        out_empty.eq(held != 4),
                        out_error.eq(err | (crc != CRC_RESIDUE) | (held != 4)),
                    ]
            with m.Case(_State.DROP):
                with m.If(~dv):
                    rx += state.eq(_State.HUNT)

        # ---- stage 2: gearbox to 8-byte beats, into the FIFO
        acc = Signal(64)
        cnt = Signal(range(9))
        first = Signal(init=1)
        pushed = Signal(range(self.max_beats))       # beats of this frame already in the FIFO
        # pushed == max_beats - 1, as a register: the compare on pushed drove the enables
        # of the 64 accumulator flip-flops (the receive clock's next path out of context, 6.1 ns).
        at_limit = Signal(init=self.max_beats == 1)
        cut = Signal()                                # frame longer than max_frame: rest discarded
        beat = Signal(mac_beat_layout(8))
        push = Signal()
        rx += push.eq(0)
        m.d.comb += [fifo.w_data.eq(beat), fifo.w_en.eq(push)]
        n_frames = Signal(32)
        n_bad = Signal(32)
        n_dropped = Signal(32)

        lanes = [acc.word_select(k, 8) for k in range(8)]
        with m.If(out_valid & ~cut):
            with m.If(cnt == 8):
                with m.If(at_limit):
                    rx += cut.eq(1)                   # keep the last slot for the closing beat
                with m.Else():
                    rx += [
                        beat.data.eq(acc), beat.nbytes.eq(8), beat.first.eq(first), beat.last.eq(0),
                        beat.error.eq(0), push.eq(1), first.eq(0), pushed.eq(pushed + 1),
                        at_limit.eq(pushed == self.max_beats - 2),
                        acc.eq(out_byte), cnt.eq(1),
                    ]
            with m.Else():
                with m.Switch(cnt):
                    for k in range(8):
                        with m.Case(k):
                            rx += lanes[k].eq(out_byte)
                rx += cnt.eq(cnt + 1)
        with m.If(out_end):
            rx += [first.eq(1), pushed.eq(0), at_limit.eq(self.max_beats == 1), cut.eq(0), cnt.eq(0)]
            with m.If(out_empty):
                rx += n_bad.eq(n_bad + 1)
            with m.Else():
                rx += [
                    beat.data.eq(acc), beat.nbytes.eq(cnt), beat.first.eq(first), beat.last.eq(1),
                    beat.error.eq(out_error | cut), push.eq(1),
                ]
                with m.If(out_error | cut):
                    rx += n_bad.eq(n_bad + 1)
                with m.Else():
                    rx += n_frames.eq(n_frames + 1)
        with m.If(drop_pulse):
            rx += n_dropped.eq(n_dropped + 1)

        # ---- read side
        m.d.comb += [
            self.o_mac.payload.eq(fifo.r_data),
            self.o_mac.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o_mac.ready),
        ]
        for name, count, out in (("frames", n_frames, self.frames), ("bad", n_bad, self.bad),
                                 ("dropped", n_dropped, self.dropped)):
            self._gray_cross(m, name, count, out)
        return m

    def _gray_cross(self, m, name, count, out):
        gray = Signal(32, name=f"{name}_gray")
        m.d[self.rx_domain] += gray.eq(gray_encode(count))       # of the value after this update
        # (registered from the counter: one cycle late, never a glitch across bits)
        synced = Signal(32, name=f"{name}_gray_sync")
        m.submodules[f"{name}_sync"] = FFSynchronizer(gray, synced, o_domain=self.domain)
        m.d[self.domain] += out.eq(gray_decode(synced))


# =========================================================================== simulation helpers

def rgmii_symbols(frames, *, preamble: int = 7, gap: int = 12, bad_fcs=(), rx_er=()) -> list[tuple[int, int, int]]:
    """Receive-clock cycles that carry ``frames`` (bytes without FCS) on an RGMII link.

    Each cycle is ``(dv, er, byte)``: preamble and SFD before each frame, its FCS after
    it (wrong for the indices in ``bad_fcs``; ``RX_ER`` raised on one byte of the
    frames in ``rx_er``), then ``gap`` idle cycles.
    """
    out = [(0, 0, 0)] * gap
    for i, frame in enumerate(frames):
        wire = with_fcs(bytes(frame))
        if i in bad_fcs:
            wire = wire[:-1] + bytes([wire[-1] ^ 0x01])
        syms = [(1, 0, PREAMBLE)] * preamble + [(1, 0, SFD)] + [(1, 0, b) for b in wire]
        if i in rx_er:
            k = preamble + 1 + len(wire) // 2
            syms[k] = (1, 1, syms[k][2])
        out += syms + [(0, 0, 0)] * gap
    return out


async def drive_rgmii(ctx, pins, symbols, *, period: float = RGMII_PERIOD) -> None:
    """Drive ``pins`` (``rx_clk``, ``rx_ctl``, ``rx_data``) with ``symbols`` from :func:`rgmii_symbols`.

    The clock starts low; data changes a quarter period before each edge's centre,
    i.e. it is stable a quarter period on either side of every edge (the timing at
    the input registers of a link whose receive delay is in place).
    """
    q = period / 4
    for dv, er, byte in symbols:
        ctx.set(pins.rx_data, byte & 0xF)
        ctx.set(pins.rx_ctl, dv)
        await ctx.delay(q)
        ctx.set(pins.rx_clk, 1)                   # rising edge: low nibble, RX_DV
        await ctx.delay(q)
        ctx.set(pins.rx_data, byte >> 4)
        ctx.set(pins.rx_ctl, dv ^ er)
        await ctx.delay(q)
        ctx.set(pins.rx_clk, 0)                   # falling edge: high nibble, RX_DV ^ RX_ER
        await ctx.delay(q)
