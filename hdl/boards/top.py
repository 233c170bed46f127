"""The board design, shared by every board: two RGMII PHYs around :class:`~wiretick.hdl.top.WiretickTop`.

::

    PHY 0 pins ─▶ RGMIIRx (rx0 → sync) ─mac─▶ WiretickTop ─m_axi──▶ HostLink ─o_tx─▶ RGMIITransmitter (sync → tx) ─▶ PHY 1 TX pins
                                                    ◀─s_axil── HostLink ◀─i_rx── RGMIIRx (rx1 → sync) ◀─ PHY 1 RX pins

Clock domains
-------------
``tx``
    125 MHz, the EHXPLLL's ``CLKOP`` from the board oscillator: the RGMII transmit clock.
``sync``
    The core clock (``board.core_mhz``), the PLL's ``CLKOS``.
``rx0``, ``rx1``
    Each PHY's ``RX_CLK`` pin (125 MHz), its own domain; the front ends cross into ``sync``.

Every domain is reset while the PLL is not locked (the board's reset button, where it has
one, resets the PLL), through a :class:`~amaranth.lib.cdc.ResetSynchronizer` in that
domain: the reset is asserted at once and released on the domain's own clock.

PHY management pins: the PHYs' reset is driven inactive from configuration onward (the
Colorlight's 25 MHz clock is the PHY's crystal output: a PHY held in reset may stop it),
MDC low, MDIO released.  The PHYs run on their strapped defaults (1000BASE-T
auto-negotiation; the delays in ``constraints/<board>/``).

LEDs (``board.leds``, each stretched to be seen)
------------------------------------------------
``link``
    The market-data PHY delivered a frame (good, bad or dropped) in the last 50 ms.
``activity``
    A frame entered the parser in the last 50 ms.
``overflow``
    In the last 500 ms: a frame dropped by a front end's FIFO (either PHY), or a DMA
    drop event or abort event tick written to the host (seen on the AXI write data).
``status``
    One LED for boards that have one: on with ``link`` or ``activity``, blinking at about
    4 Hz with ``overflow``.

Simulation
----------
``BoardTop(board, sim=True)`` elaborates with no platform: the PHY pins are ports
(``phy0``, ``phy1``: :class:`RGMIIPhySignature`, flipped), the LEDs a port, the ECP5
primitives their models (:mod:`wiretick.hdl.ecp5io`).  The simulator makes the
``sync`` and ``tx`` clocks (:meth:`BoardTop.add_sim_clocks`); the testbench drives
each ``rx_clk`` pin (e.g. :func:`wiretick.hdl.rgmii_rx.drive_rgmii`).
"""

from __future__ import annotations

from fractions import Fraction

from amaranth.hdl import ClockDomain, ClockSignal, Module, Signal
from amaranth.lib import io, stream, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import Flag

from ..common import mac_beat_layout
from ..ecp5io import EHXPLLL, is_ecp5, pll_dividers
from ..hostlink import HostLink
from ..rgmii_rx import RGMIIRx
from ..rgmii_tx import RGMIITransmitter
from ..top import WiretickTop

__all__ = ["BoardTop", "RGMIIPhySignature", "LED_FUNCTIONS"]

#: What an LED can show (see the module doc).
LED_FUNCTIONS = ("link", "activity", "overflow", "status")

#: Where a tick's flags and type sit in the DMA's last 8-byte beat of the tick (bytes 56..63).
_FLAGS_BIT = (60 - 56) * 8
_TYPE_BIT = (62 - 56) * 8


class RGMIIPhySignature(wiring.Signature):
    """An RGMII PHY's pins, from the PHY's side (receive pins out, transmit pins in)."""

    def __init__(self):
        super().__init__({
            "rx_clk": Out(1), "rx_ctl": Out(1), "rx_data": Out(4),
            "tx_clk": In(1), "tx_ctl": In(1), "tx_data": In(4),
        })


class _Stretch(wiring.Component):
    """``o`` high for ``cycles`` cycles after each ``i`` pulse."""

    def __init__(self, cycles: int):
        self.cycles = max(int(cycles), 1)
        super().__init__({"i": In(1), "o": Out(1)})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.cycles + 1))
        with m.If(self.i):
            m.d.sync += count.eq(self.cycles)
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        m.d.comb += self.o.eq(count != 0)
        return m


class _BeatRegister(wiring.Component):
    """A stream's beat held in a register, ``i.ready`` and ``o.valid`` registers too.

    It passes a beat every other cycle at most: 25 M beats a second at 50 MHz, against
    15.6 M for a 1 Gb/s link.  Neither side's logic reaches the other's: the host link's
    ready logic does not drive the receive FIFO's read (its pointer adder and block RAM
    address), nor the block RAM's output the host link's request parser.
    """

    def __init__(self, layout):
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(full)]
        with m.If(full):
            with m.If(self.o.ready):
                m.d.sync += full.eq(0)
        with m.Elif(self.i.valid):
            m.d.sync += [self.o.payload.eq(self.i.payload), full.eq(1)]
        return m


class BoardTop(wiring.Component):
    """The board design (see the module doc).

    Parameters
    ----------
    board : wiretick.hdl.boards.Board
        Clocks, PHYs, delays, LEDs.
    sim : bool
        Expose the pins as ports and build for simulation (no platform).
    led_ms : float
        How long ``link`` and ``activity`` stay lit after an event (``overflow``: 10x).

    Attributes (``sim=True`` only)
    ------------------------------
    phy0, phy1 : In(RGMIIPhySignature())
        Market data PHY, host-link PHY.
    leds : Out(len(board.leds))
    """

    def __init__(self, board, *, sim: bool = False, led_ms: float = 50):
        for f in board.leds:
            if f not in LED_FUNCTIONS:
                raise ValueError(f"board {board.name}: unknown LED function {f!r} (known: {LED_FUNCTIONS})")
        self.board = board
        self.sim = sim
        self.led_ms = led_ms
        # CLKOP (the PLL's feedback) is the transmit clock: 125 MHz from every oscillator we have.
        self._pll_outputs = {"tx": Fraction(125), "sync": Fraction(board.core_mhz)}
        self.pll_config = pll_dividers(board.osc_mhz, list(self._pll_outputs.values()))
        super().__init__({
            "phy0": In(RGMIIPhySignature()),
            "phy1": In(RGMIIPhySignature()),
            "leds": Out(len(board.leds)),
        } if sim else {})

    def add_sim_clocks(self, sim) -> None:
        """Clock ``tx`` and ``sync`` in ``sim`` at the PLL's frequencies (the model makes no clocks)."""
        for name, f in zip(self._pll_outputs, self.pll_config.f_out):
            sim.add_clock(float(1 / (f * 1_000_000)), domain=name)

    # ----------------------------------------------------------------- pins

    def _phy_pins(self, m, platform, index):
        """``(rx_clk, rx_ctl, rx_data, tx_clk, tx_ctl, tx_data)`` values: ports, or pad buffers."""
        if platform is None:
            p = self.phy0 if index == 0 else self.phy1
            return p.rx_clk, p.rx_ctl, p.rx_data, p.tx_clk, p.tx_ctl, p.tx_data
        name, number = self.board.phys[index].resource
        res = platform.request(name, number, dir="-")

        def pin(*names):
            # amaranth-boards' Versa names PHY 1's control pins rx_ctrl/tx_ctrl.
            for n in names:
                if hasattr(res, n):
                    return getattr(res, n)
            raise AttributeError(f"{name} {number} has none of {names}")

        def buf(direction, port, tag):
            m.submodules[f"phy{index}_{tag}"] = b = io.Buffer(direction, port)
            return b.i if direction == "i" else b.o

        out = (buf("i", pin("rx_clk"), "rx_clk"), buf("i", pin("rx_ctl", "rx_ctrl"), "rx_ctl"),
               buf("i", pin("rx_data"), "rx_data"), buf("o", pin("tx_clk"), "tx_clk"),
               buf("o", pin("tx_ctl", "tx_ctrl"), "tx_ctl"), buf("o", pin("tx_data"), "tx_data"))
        if hasattr(res, "rst"):
            self._management(m, res, f"phy{index}")
        return out

    @staticmethod
    def _management(m, res, tag):
        """PHY reset inactive (its pins are active-low: the port inverts), MDC low, MDIO released."""
        m.submodules[f"{tag}_rst"] = rst = io.Buffer("o", res.rst)
        m.submodules[f"{tag}_mdc"] = mdc = io.Buffer("o", res.mdc)
        m.submodules[f"{tag}_mdio"] = io.Buffer("i", res.mdio)
        m.d.comb += [rst.o.eq(0), mdc.o.eq(0)]

    # ----------------------------------------------------------------- design

    def elaborate(self, platform):
        if platform is not None and not is_ecp5(platform):
            raise TypeError(f"BoardTop builds for ECP5 platforms or simulation, not {type(platform).__name__}")
        if (platform is None) != self.sim:
            raise ValueError("BoardTop(sim=True) is for simulation (no platform); sim=False for a platform")
        m = Module()
        board = self.board
        for d in ("sync", "tx", "rx0", "rx1"):
            m.domains += ClockDomain(d)

        # ---- clocks and resets
        m.submodules.pll = pll = EHXPLLL(board.osc_mhz, dict(self._pll_outputs))
        if platform is not None:
            m.submodules.osc = osc = io.Buffer("i", platform.request(board.osc_resource, 0, dir="-"))
            m.d.comb += pll.clk_in.eq(osc.i)
            if board.reset_resource is not None:
                m.submodules.reset_pin = rst = io.Buffer("i", platform.request(board.reset_resource, 0, dir="-"))
                m.d.comb += pll.rst.eq(rst.i)
            for name, f in zip(self._pll_outputs, self.pll_config.f_out):
                platform.add_clock_constraint(pll.clocks[name], float(f) * 1e6)
            if ("eth_mgmt", 0) in platform.resources:      # management pins the PHYs share
                self._management(m, platform.request("eth_mgmt", 0, dir="-"), "mgmt")
        pins = [self._phy_pins(m, platform, i) for i in (0, 1)]
        for i, (rx_clk, *_rest) in enumerate(pins):
            m.d.comb += ClockSignal(f"rx{i}").eq(rx_clk)
        for d in ("sync", "tx", "rx0", "rx1"):
            m.submodules[f"reset_{d}"] = ResetSynchronizer(~pll.lock, domain=d)

        # ---- market data: PHY 0 -> front end -> core
        m.submodules.rx_feed = rx_feed = RGMIIRx(domain="sync", rx_domain="rx0",
                                                 delay_taps=board.phys[0].rx_delay_taps)
        m.submodules.core = core = WiretickTop(ns_per_cycle=Fraction(1000) / Fraction(board.core_mhz),
                                               dma_data_width=64)
        rx_clk0, rx_ctl0, rx_data0, tx_clk0, tx_ctl0, tx_data0 = pins[0]
        m.d.comb += [rx_feed.rx_ctl.eq(rx_ctl0), rx_feed.rx_data.eq(rx_data0)]
        # The core's MAC input is never back-pressured (always ready).
        m.d.comb += [
            core.mac.payload.eq(rx_feed.o_mac.payload),
            core.mac.valid.eq(rx_feed.o_mac.valid),
            rx_feed.o_mac.ready.eq(1),
        ]
        # PHY 0 transmits nothing: TX_EN low, its clock and data still.
        m.d.comb += [tx_clk0.eq(0), tx_ctl0.eq(0), tx_data0.eq(0)]

        # ---- host link: PHY 1 (receive requests, transmit DMA writes and answers)
        m.submodules.rx_host = rx_host = RGMIIRx(domain="sync", rx_domain="rx1",
                                                 delay_taps=board.phys[1].rx_delay_taps)
        m.submodules.link = link = HostLink(lite_addr_width=len(core.s_axil.awaddr))
        m.submodules.tx_host = tx_host = RGMIITransmitter(domain="tx")
        rx_clk1, rx_ctl1, rx_data1, tx_clk1, tx_ctl1, tx_data1 = pins[1]
        m.d.comb += [rx_host.rx_ctl.eq(rx_ctl1), rx_host.rx_data.eq(rx_data1)]
        wiring.connect(m, core.m_axi, link.s_axi)
        wiring.connect(m, link.m_axil, core.s_axil)
        # A register between them: the receive FIFO's block RAM through the host link's
        # request logic was a 13.7 ns path (of the 50 MHz domain) on the Colorlight.
        m.submodules.rx_host_beat = beat = _BeatRegister(mac_beat_layout(8))
        wiring.connect(m, rx_host.o_mac, beat.i)
        wiring.connect(m, beat.o, link.i_rx)
        wiring.connect(m, link.o_tx, tx_host.i_frame)
        m.d.comb += [tx_clk1.eq(tx_host.txc), tx_ctl1.eq(tx_host.tx_ctl), tx_data1.eq(tx_host.txd)]

        # ---- LEDs
        m.d.comb += self._leds(m, platform, core, rx_feed, rx_host)
        return m

    def _leds(self, m, platform, core, rx_feed, rx_host):
        cycles = int(Fraction(self.board.core_mhz) * 1000 * Fraction(self.led_ms))

        def changed(value):
            prev = Signal.like(value)
            m.d.sync += prev.eq(value)
            return prev != value

        link_ev = changed(rx_feed.frames) | changed(rx_feed.bad) | changed(rx_feed.dropped)
        act_ev = core.mac.valid & core.mac.payload.last
        # A drop or abort event tick: the DMA's 8-beat burst per tick, flags in its last beat.
        w = core.m_axi
        beat = Signal(3)
        with m.If(w.wvalid & w.wready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(w.wlast):
                m.d.sync += beat.eq(0)
        flags = w.wdata[_FLAGS_BIT:_FLAGS_BIT + 16]
        event_tick = Signal()
        m.d.sync += event_tick.eq(w.wvalid & w.wready & (beat == 7) & (w.wdata[_TYPE_BIT:_TYPE_BIT + 8] == 0)
                                  & ((flags & (Flag.EVENT_DROP | Flag.EVENT_ABORT)) != 0))
        over_ev = event_tick | changed(rx_feed.dropped) | changed(rx_host.dropped)

        m.submodules.led_link = s_link = _Stretch(cycles)
        m.submodules.led_act = s_act = _Stretch(cycles)
        m.submodules.led_over = s_over = _Stretch(10 * cycles)
        m.d.comb += [s_link.i.eq(link_ev), s_act.i.eq(act_ev), s_over.i.eq(over_ev)]
        blink = Signal(range(max(cycles * 2, 2)))
        blink_on = Signal()
        with m.If(blink == 0):
            m.d.sync += [blink.eq(max(cycles * 2, 2) - 1), blink_on.eq(~blink_on)]
        with m.Else():
            m.d.sync += blink.eq(blink - 1)
        value = {
            "link": s_link.o, "activity": s_act.o, "overflow": s_over.o,
            "status": (s_link.o | s_act.o) ^ (s_over.o & blink_on),
        }
        outs = []
        for i, f in enumerate(self.board.leds):
            if platform is None:
                outs.append(self.leds[i].eq(value[f]))
            else:
                m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
                outs.append(led.o.eq(value[f]))
        return outs
