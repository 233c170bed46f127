"""The parser core: MAC receive stream in, ticks and counters out.

Pipeline (one beat per cycle, never back-pressured)::

    i_mac ─▶ HeaderParser ─reg─▶ BlockSplitter ─▶ MessageAssembler ─reg─▶ TickBuilder ─▶ Sequencer ─reg─▶ o_tick
               (Eth/VLAN/IPv4/      (MoldUDP64 blocks,     (message bytes)     (TICK_MAP)     (gaps, duplicates,
                UDP/Mold checks)     per-block checks)                                          seq, aborts)

Latency: a message's tick is valid on ``o_tick`` three cycles after the clock edge
that accepts the beat holding the message's last byte: one register after the
header parser, one for the assembled message (the splitter's slots for a beat are
registers computed from earlier beats, so the splitter adds no cycle), and the
tick register (behind which an optional queue, ``fifo_depth``, holds ticks while a
consumer stalls).
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import COUNTERS
from wiretick.host.contract.registers import COUNTER_BITS

from .assembler import MessageAssembler
from .builder import TickBuilder
from .common import mac_beat_layout
from .counters import CounterBank
from .header import HeaderParser
from .sequencer import Sequencer, preload_layout
from .splitter import BlockSplitter
from .tick import TickLayout

__all__ = ["ItchParser", "LATENCY"]

#: Cycles from the edge accepting a message's last beat to its tick on ``o_tick``.
LATENCY = 3


class _Link(Elaboratable):
    """An always-ready stream from ``source`` to ``sink`` (wires only), its ``data``
    field from ``data`` when given."""

    def __init__(self, source, sink, data=None):
        self.source, self.sink, self.data = source, sink, data

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.sink.valid.eq(self.source.valid), self.sink.payload.eq(self.source.payload)]
        if self.data is not None:
            m.d.comb += self.sink.payload.data.eq(self.data)
        return m


def _link(m: Module, name: str, source, sink, data=None) -> None:
    m.submodules[name] = _Link(source, sink, data)


class ItchParser(wiring.Component):
    """NASDAQ TotalView-ITCH 5.0 over MoldUDP64/UDP/IPv4/Ethernet, cut-through.

    Behaves as docs/reference-model.md says, frame by frame; ``ready`` of the MAC
    stream is constantly 1.  A frame is opened by ``first`` (which also abandons an
    unfinished one) and closed by ``last``.

    Parameters
    ----------
    width : int
        Datapath width in bytes (8: the stages are written for any power of two
        up to 8; the splitter checks its own limit).
    fifo_depth : int
        Depth of the tick output queue (ticks are only queued while ``o_tick.ready``
        is low); 0 (the default) for none: ``o_tick`` is then always-ready, for a
        consumer that takes a tick every cycle (the DMA engine).
    counter_bits : int
        Width of each counter (they wrap; 32 as in the top, whose host extends them).

    Attributes
    ----------
    i_mac : In(stream.Signature(mac_beat_layout(width), always_ready=True))
        MAC receive stream.
    o_tick : Out(stream.Signature(TickLayout, always_ready=fifo_depth == 0))
        Ticks.
    timestamp : In(64)
        Nanosecond clock; a frame's ``ts_rx`` is its value when the first beat is accepted.
    ip_dst, port, check_ip_checksum, sequence_check : In
        Configuration (see docs/reference-model.md; 0 = any address / port), registered
        on the way in: a change applies from the second cycle after it.
    preload : In(preload_layout)
        Late join (:data:`~wiretick.hdl.sequencer.preload_layout`): the tracked session,
        the expected number and the next tick's ``seq``, loaded on ``preload.en``.
    counters : Out(ArrayLayout(counter_bits, len(COUNTERS)))
        Counter ``formats.COUNTER_INDEX[name]`` for every name of ``formats.COUNTERS``.
    lost : Out(counter_bits)
        Ticks dropped because the output queue was full (``o_tick.ready`` held low);
        each leaves a hole in ``seq``.
    """

    def __init__(self, width: int = 8, fifo_depth: int = 0, counter_bits: int = COUNTER_BITS):
        self.width = width
        self.fifo_depth = fifo_depth
        self.counter_bits = counter_bits
        super().__init__({
            "i_mac": In(stream.Signature(mac_beat_layout(width), always_ready=True)),
            "o_tick": Out(stream.Signature(TickLayout, always_ready=fifo_depth == 0)),
            "timestamp": In(64),
            "ip_dst": In(32),
            "port": In(16),
            "check_ip_checksum": In(1, init=1),
            "sequence_check": In(1, init=1),
            "preload": In(preload_layout),
            "counters": Out(data.ArrayLayout(unsigned(counter_bits), len(COUNTERS))),
            "lost": Out(counter_bits),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        m.submodules.header = header = HeaderParser(W)
        m.submodules.splitter = splitter = BlockSplitter(W)
        m.submodules.assembler = assembler = MessageAssembler(W)
        m.submodules.builder = builder = TickBuilder()
        m.submodules.sequencer = sequencer = Sequencer(W, self.fifo_depth)

        wiring.connect(m, wiring.flipped(self.i_mac), header.i_mac)
        # The streams between stages are always-ready; each link is its own small
        # fragment (no logic), which keeps the simulator from re-running every
        # connection whenever any one of them changes.
        _link(m, "link_hdr_split", header.o_beat, splitter.i_beat)
        # (the beat's bytes from the header parser's copy for the assembler: the
        # splitter passes them through unchanged, from the register its own length
        # logic reads)
        _link(m, "link_split_asm", splitter.o_blk, assembler.i_blk, data=header.o_data)
        _link(m, "link_split_seq", splitter.o_blk, sequencer.i_blk)   # frame events, block counts
        _link(m, "link_asm_build", assembler.o_msg, builder.i_msg)
        _link(m, "link_build_seq", builder.o_built, sequencer.i_built)
        m.d.comb += sequencer.i_ok.eq(splitter.o_ok)
        wiring.connect(m, sequencer.o_tick, wiring.flipped(self.o_tick))
        # The configuration is registered here, a cycle from the register file's own
        # registers: they are placed apart from the stages, and a configuration bit
        # drives many of a stage's LUTs (a route to them and through them did not fit
        # one cycle).  A change takes effect a cycle later.
        # (reset_less: the parser's reset at a run start leaves the configuration as it is)
        ip_dst, port = Signal.like(self.ip_dst, reset_less=True), Signal.like(self.port, reset_less=True)
        check_ip_checksum, sequence_check = Signal(init=1, reset_less=True), Signal(init=1, reset_less=True)
        m.d.sync += [
            ip_dst.eq(self.ip_dst), port.eq(self.port),
            check_ip_checksum.eq(self.check_ip_checksum), sequence_check.eq(self.sequence_check),
        ]
        m.d.comb += [
            header.timestamp.eq(self.timestamp),
            header.ip_dst.eq(ip_dst),
            header.port.eq(port),
            header.check_ip_checksum.eq(check_ip_checksum),
            sequencer.sequence_check.eq(sequence_check),
            sequencer.preload.eq(self.preload),
        ]

        # Counter bank: every counter from exactly one stage.
        sources = {}
        for stage in (header, splitter, sequencer):
            for name, _field in stage.o_count.shape():
                if name in sources:
                    raise AssertionError(f"counter {name} has two sources")
                sources[name] = getattr(stage.o_count, name)
        m.submodules.bank = bank = CounterBank(sources, self.counter_bits)
        m.d.comb += self.counters.eq(bank.counters)
        with m.If(sequencer.o_lost):
            m.d.sync += self.lost.eq(self.lost + 1)
        return m
