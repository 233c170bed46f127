"""The whole feed handler: MAC stream in, ticks into host memory, registers on AXI4-Lite.

:class:`WiretickTop` wires the three blocks together::

    mac ─▶ ItchParser ─ticks─▶ TickDMA ─▶ m_axi (AXI4 write master, host memory)
              ▲   │counters      ▲ │status
              │   ▼              │ ▼
            RegisterFile ◀── s_axil (AXI4-Lite slave, the host's registers)
              └─ NsClock ─▶ ts_rx (parser) and drop-event time (DMA)

What the register file drives (docs/registers.md):

- the parser's configuration: ``IP_DST``, ``PORT``, ``CHECK_IP_CHECKSUM``,
  ``SEQUENCE_CHECK``;
- the parser's late-join state (``JOIN``, ``JOIN_*``), see below;
- the DMA engine's: ``ENABLE``, ``RING_BASE``, ``RING_LOG2``, ``SHADOW_ADDR``,
  ``SHADOW_INTERVAL``;
- the nanosecond clock, the ``timestamp`` of both (a tick's ``ts_rx``);

and what it latches on ``SNAPSHOT``: the parser's counters and ``lost``
(``PARSER_LOST``), the DMA engine's ``head``, ``dropped``, ``drop_events`` and
``bus_errors``, and the clock.  ``DMA_STATE`` is live.  Each counter is as wide
as its register: the event counters are 32 bits in the parser (its counter bank;
the unused high bits of ``lost`` are removed by synthesis), the DMA engine and
the registers, and the host extends them to 64
(:data:`~wiretick.host.contract.registers.COUNTER_NOTE`).

Runs
----
A run starts on the cycle the DMA engine leaves ``OFF`` (``ENABLE`` is high and the
engine samples the ring configuration).  The parser is reset on the next cycle (a
synchronous reset of the parser alone, from a register: the reset reaches every
flip-flop of the parser, and one register driving that net directly is what lets
it do so within a cycle; the engine ignores the parser's output on that cycle,
which still comes from before the reset), so a run is what the host expects of a
fresh device: tick ``seq`` from 1 (the DMA engine numbers slots from 1), every
parser counter from 0, no MoldUDP64 session tracked yet, ``PARSER_LOST`` 0.  The
parser keeps running between runs (frames are counted while the engine is off,
and the engine ignores their ticks); a frame in progress at the start of a run
is abandoned (the reset parser waits for the next ``first`` beat).  Register
values (the configuration) are not reset.

Late join
---------
With ``JOIN`` at 1, a run starts from the sequence state in the ``JOIN_*``
registers instead of the empty one: the tracked session (``JOIN_HAS_SESSION``,
``JOIN_SESSION``, ``JOIN_SESSION_HI``), the next expected message number
(``JOIN_EXPECTED``) and the parser's ``seq`` of the run's first tick
(``JOIN_SEQ``).  The parser takes them on its ``preload`` port only while it is
idle, which here means the cycle after its reset: it holds no frame, and a frame
whose first beat arrives on that cycle reaches the sequencer several cycles later.  Nothing else drives
``preload``, so the state of a run in progress is never replaced.  The ring's
``seq`` still counts from 1 (the DMA engine numbers its slots); ``JOIN_SEQ``
numbers the parser's ticks, the numbers abort events refer to.

The MAC stream is never back-pressured (``ready`` is constantly 1), nor is the
parser: the DMA engine takes a tick every cycle and queues ``dma_fifo_depth`` of
them while the bus stalls (a full queue drops ticks and writes drop events, see
:mod:`wiretick.hdl.dma`).
"""

from __future__ import annotations

from fractions import Fraction

from amaranth.hdl import Cat, ClockDomain, ClockSignal, DomainRenamer, Module, ResetSignal, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.registers import MAP_SIZE

from .axi import AXI4LiteSignature, AXI4WriteSignature
from .common import mac_beat_layout
from .dma import TickDMA
from .parser import ItchParser
from .regs import RegisterFile

__all__ = ["WiretickTop", "TOP_NAME", "DEFAULT_NS_PER_CYCLE", "registered_reset_domains"]

#: Verilog module name of the top.
TOP_NAME = "wiretick_top"

#: 64-bit MAC datapath of 10GbE (XGMII/64b): 156.25 MHz, 6.4 ns a cycle.
DEFAULT_NS_PER_CYCLE = Fraction(32, 5)

_LITE_ADDR_BITS = (MAP_SIZE - 1).bit_length()


class WiretickTop(wiring.Component):
    """The SmartNIC feed handler: :class:`ItchParser`, :class:`TickDMA` and :class:`RegisterFile`.

    Parameters
    ----------
    ns_per_cycle : int, Fraction or str
        Clock period (the nanosecond clock's increment per cycle); default 6.4 ns
        (156.25 MHz, a 10GbE MAC's 64-bit datapath).
    dma_data_width, dma_fifo_depth, dma_max_outstanding, dma_max_log2 : int
        :class:`TickDMA` parameters (``data_width``, ``fifo_depth``,
        ``max_outstanding``, ``max_log2_slots``).
    dma_checks : bool
        The DMA engine's simulation ``Assert``\\ s (off for Verilog: Yosys drops them).

    Attributes
    ----------
    mac : In(stream.Signature(mac_beat_layout(8), always_ready=True))
        The MAC receive stream, 8 bytes a beat (:func:`~wiretick.hdl.common.mac_beat_layout`).
    m_axi : Out(AXI4WriteSignature(64, dma_data_width))
        Writes into host memory (ring slots and the shadow head).
    s_axil : In(AXI4LiteSignature(addr_width, 32))
        The register map (:data:`wiretick.host.contract.registers.REGISTERS`).
    """

    def __init__(self, *, ns_per_cycle=DEFAULT_NS_PER_CYCLE, dma_data_width: int = 512, dma_fifo_depth: int = 64,
                 dma_max_outstanding: int = 16, dma_max_log2: int = 24,
                 dma_checks: bool = False):
        self.ns_per_cycle = ns_per_cycle
        self.dma_data_width = dma_data_width
        self.dma_fifo_depth = dma_fifo_depth
        self.dma_max_outstanding = dma_max_outstanding
        self.dma_max_log2 = dma_max_log2
        self.dma_checks = dma_checks
        super().__init__({
            "mac": In(stream.Signature(mac_beat_layout(8), always_ready=True)),
            "m_axi": Out(AXI4WriteSignature(addr_width=64, data_width=dma_data_width)),
            "s_axil": In(AXI4LiteSignature(addr_width=_LITE_ADDR_BITS, data_width=32)),
        })

    def elaborate(self, platform):
        m = Module()
        regs = RegisterFile(ns_per_cycle=self.ns_per_cycle, counter_bits=64, dma_data_width=self.dma_data_width,
                            dma_fifo_depth=self.dma_fifo_depth, dma_max_log2=self.dma_max_log2,
                            addr_width=_LITE_ADDR_BITS)
        dma = TickDMA(data_width=self.dma_data_width, fifo_depth=self.dma_fifo_depth,
                      max_outstanding=self.dma_max_outstanding, max_log2_slots=self.dma_max_log2,
                      addr_width=64, checks=self.dma_checks)
        # No queue after the parser: the DMA engine takes a tick every cycle.
        parser = ItchParser(8, fifo_depth=0, counter_bits=64)

        # The cycle a run starts: the engine leaves OFF (to RUN, or to ERROR on a
        # misaligned configuration) exactly when it is OFF with ENABLE high.
        # The parser's reset: the domain's, or a run starting (see Runs), through a
        # register that is the parser domain's reset net and nothing else.  (Not reset
        # itself, and 0 from power-up: the parser follows the domain's reset a cycle
        # late, and takes a frame from the very first cycle when there is none.)
        parser_rst = Signal(reset_less=True)
        m.d.sync += parser_rst.eq(dma.starting | ResetSignal("sync", allow_reset_less=True))
        m.domains.parser = ClockDomain("parser")
        m.d.comb += [ClockSignal("parser").eq(ClockSignal("sync")), ResetSignal("parser").eq(parser_rst)]
        # Late join: the parser is idle the cycle after its reset.
        join_apply = Signal()
        m.d.sync += join_apply.eq(parser_rst & regs.join)

        m.submodules.regs = regs
        m.submodules.dma = dma
        m.submodules.parser = DomainRenamer({"sync": "parser"})(parser)

        wiring.connect(m, wiring.flipped(self.s_axil), regs.bus)
        wiring.connect(m, wiring.flipped(self.mac), parser.i_mac)
        m.d.comb += [
            # (the tick on the reset's cycle is from before it)
            dma.i_ticks.valid.eq(parser.o_tick.valid & ~parser_rst),
            dma.i_ticks.payload.eq(parser.o_tick.payload),
        ]
        wiring.connect(m, dma.bus, wiring.flipped(self.m_axi))
        m.d.comb += [
            parser.timestamp.eq(regs.timestamp),
            parser.ip_dst.eq(regs.ip_dst),
            parser.port.eq(regs.port),
            parser.check_ip_checksum.eq(regs.check_ip_checksum),
            parser.sequence_check.eq(regs.sequence_check),
            parser.preload.en.eq(join_apply),
            parser.preload.has.eq(regs.join_has_session),
            parser.preload.session.eq(Cat(regs.join_session, regs.join_session_hi)),
            parser.preload.expected.eq(regs.join_expected),
            parser.preload.seq.eq(regs.join_seq),
            dma.timestamp.eq(regs.timestamp),
            dma.enable.eq(regs.enable),
            dma.ring_base.eq(regs.ring_base),
            dma.ring_log2.eq(regs.ring_log2),
            dma.shadow_addr.eq(regs.shadow_addr),
            dma.shadow_interval.eq(regs.shadow_interval),
            regs.counters.eq(parser.counters),
            regs.parser_lost.eq(parser.lost),
            regs.dma_state.eq(dma.state),
            regs.dma_head.eq(dma.head),
            regs.dma_dropped.eq(dma.dropped),
            regs.dma_drop_events.eq(dma.drop_events),
            regs.dma_bus_errors.eq(dma.bus_errors),
        ]
        return m


def registered_reset_domains(m, clk, rst, raw: str = "raw") -> None:
    """Add ``sync`` on ``clk`` with its reset taken from ``rst`` through a register, and a reset-less ``raw``.

    A wrapper around the top (a board, a simulation harness) registers its
    inputs in ``raw``.  On a board the reset reaches the fabric through a
    synchronizer register anyway; in Verilator a raw reset input would feed
    every register's next-state logic, which it then re-evaluates whenever any
    input changes.  The design sees reset one cycle later, which nothing can
    tell apart.
    """
    from amaranth.hdl import ClockDomain
    sync, free = ClockDomain("sync"), ClockDomain(raw, reset_less=True)
    m.domains += [sync, free]
    m.d.comb += [sync.clk.eq(clk), free.clk.eq(clk)]
    m.d[raw] += sync.rst.eq(rst)
