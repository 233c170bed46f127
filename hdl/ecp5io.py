"""ECP5 I/O primitives: the Lattice cell on an ECP5 platform, a behavioural model in simulation.

Yosys ships only black boxes for ``IDDRX1F``, ``ODDRX1F`` and ``DELAYG`` (and
Amaranth 0.5's ``io.DDRBuffer`` becomes a bare ``IDDRX1F``/``ODDRX1F`` with no
model), so a board design using them could not be simulated as it is built.
Each component here elaborates to the Lattice primitive (an ``Instance``) when
the platform is an ECP5 platform, and to a small behavioural model when the
platform is ``None`` (Amaranth's simulator), so the same board design is both
simulated and built.

The models follow Lattice's *ECP5 and ECP5-5G High-Speed I/O Interface*
technical note (TN1265, now FPGA-TN-02035), section "Generic DDR": the X1
gearing elements, clocked by ``SCLK`` only.

- :class:`IDDRX1F` samples ``D`` on the rising edge of ``SCLK`` and on the
  falling edge, and presents both on the *next* rising edge: ``Q0`` is the
  rising-edge sample, ``Q1`` the falling-edge sample that followed it.  The
  rising-edge sample is held for the extra half cycle so that the pair comes
  out aligned, one cycle after the rising edge that captured ``Q0``'s bit.
- :class:`ODDRX1F` registers ``D0`` and ``D1`` on the rising edge of ``SCLK``;
  ``Q`` is ``D0`` while ``SCLK`` is high and ``D1`` while it is low (the ``D1``
  register is re-timed on the falling edge so that ``Q`` never glitches), so
  the bit pair given in cycle *n* leaves the pin in cycle *n + 1*, ``D0`` first.
  ``ODDRX1F(D0=1, D1=0)`` forwards ``SCLK`` itself to a pin (a source-synchronous
  clock, edge-aligned with the data).
- :class:`DELAYG` is a fixed input/output delay, ``DEL_VALUE`` taps of about
  25 ps (0..127).  Amaranth's simulator has no time inside a combinational
  path, so the model passes ``A`` to ``Z`` unchanged; a testbench models a
  board's delay where it drives the pins (data moving a quarter period away
  from the clock edges, as the delayed signals arrive at the flip-flops).
- :class:`EHXPLLL` is the general-purpose PLL.  Its dividers are computed
  here (:func:`pll_dividers`) for the exact requested frequencies; in
  simulation the simulator makes the output clocks (:meth:`EHXPLLL.add_sim_clocks`)
  and the model provides ``lock``, high after ``lock_cycles`` cycles of the
  first output.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import ClockDomain, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["is_ecp5", "IDDRX1F", "ODDRX1F", "DELAYG", "EHXPLLL", "PLLConfig", "pll_dividers"]


def is_ecp5(platform) -> bool:
    """True if ``platform`` is an Amaranth Lattice platform for an ECP5 device."""
    return platform is not None and getattr(platform, "family", None) == "ecp5"


def _require_ecp5_or_sim(platform, what: str) -> bool:
    if platform is None:
        return False
    if is_ecp5(platform):
        return True
    raise TypeError(f"{what} is an ECP5 primitive: elaborate it for an ECP5 platform or for simulation "
                    f"(platform None), not for {type(platform).__name__}")


class IDDRX1F(wiring.Component):
    """Generic X1 DDR input register (``IDDRX1F``), one per bit of ``d``.

    Parameters
    ----------
    width : int
        Number of pins.
    domain : str
        The clock domain whose clock is ``SCLK`` (its rising edge is the "rising edge").

    Attributes
    ----------
    d : In(width)
        From the pad (or a :class:`DELAYG`): on ECP5 it must come straight from the
        input buffer, as the register lives in the I/O tile.
    q0 : Out(width)
        The bit sampled on a rising edge of ``SCLK``, presented one cycle later.
    q1 : Out(width)
        The bit sampled on the falling edge that followed it, presented with ``q0``.
    """

    def __init__(self, width: int = 1, *, domain: str = "sync"):
        self.width = width
        self.domain = domain
        super().__init__({"d": In(width), "q0": Out(width), "q1": Out(width)})

    def elaborate(self, platform):
        ecp5 = _require_ecp5_or_sim(platform, "IDDRX1F")
        m = Module()
        if ecp5:
            for bit in range(self.width):
                m.submodules[f"iddr{bit}"] = Instance(
                    "IDDRX1F", i_SCLK=ClockSignal(self.domain), i_RST=Const(0),
                    i_D=self.d[bit], o_Q0=self.q0[bit], o_Q1=self.q1[bit])
            return m
        # Model (TN1265, generic DDR input): capture on both edges, re-time the
        # rising-edge capture to the next rising edge together with the falling one.
        m.domains.neg = neg = ClockDomain(local=True, clk_edge="neg", reset_less=True)
        m.d.comb += neg.clk.eq(ClockSignal(self.domain))
        pos_cap = Signal(self.width)
        neg_cap = Signal(self.width)
        m.d[self.domain] += pos_cap.eq(self.d)
        m.d.neg += neg_cap.eq(self.d)
        m.d[self.domain] += [self.q0.eq(pos_cap), self.q1.eq(neg_cap)]
        return m


class ODDRX1F(wiring.Component):
    """Generic X1 DDR output register (``ODDRX1F``), one per bit of ``q``.

    Parameters
    ----------
    width : int
        Number of pins.
    domain : str
        The clock domain whose clock is ``SCLK``.

    Attributes
    ----------
    d0 : In(width)
        Sent while ``SCLK`` is high (after the rising edge that registers it).
    d1 : In(width)
        Sent while ``SCLK`` is low (after the falling edge that follows).
    q : Out(width)
        To the pad: on ECP5 it must drive the output buffer directly.
    """

    def __init__(self, width: int = 1, *, domain: str = "sync"):
        self.width = width
        self.domain = domain
        super().__init__({"d0": In(width), "d1": In(width), "q": Out(width)})

    def elaborate(self, platform):
        ecp5 = _require_ecp5_or_sim(platform, "ODDRX1F")
        m = Module()
        if ecp5:
            for bit in range(self.width):
                m.submodules[f"oddr{bit}"] = Instance(
                    "ODDRX1F", i_SCLK=ClockSignal(self.domain), i_RST=Const(0),
                    i_D0=self.d0[bit], i_D1=self.d1[bit], o_Q=self.q[bit])
            return m
        # Model (TN1265, generic DDR output): both bits registered on the rising
        # edge, the second re-timed on the falling edge, the pin muxed by SCLK.
        m.domains.neg = neg = ClockDomain(local=True, clk_edge="neg", reset_less=True)
        m.d.comb += neg.clk.eq(ClockSignal(self.domain))
        reg0 = Signal(self.width)
        reg1 = Signal(self.width)
        reg1_neg = Signal(self.width)
        m.d[self.domain] += [reg0.eq(self.d0), reg1.eq(self.d1)]
        m.d.neg += reg1_neg.eq(reg1)
        m.d.comb += self.q.eq(Mux(ClockSignal(self.domain), reg0, reg1_neg))
        return m


#: One DELAYG tap, picoseconds (TN1265: "approximately 25 ps per tap" for the fixed delay).
DELAY_TAP_PS = 25


class DELAYG(wiring.Component):
    """Fixed input delay (``DELAYG``) between an input buffer and its register.

    Parameters
    ----------
    width : int
        Number of pins.
    taps : int
        ``DEL_VALUE``: 0..127 taps of about 25 ps (``DEL_MODE="USER_DEFINED"``).

    Attributes
    ----------
    a : In(width)
        From the input buffer; nextpnr packs the delay into the I/O tile only when it
        is the pad's only user.
    z : Out(width)
        Delayed; on ECP5 it should feed an :class:`IDDRX1F` (or a fabric register).
    """

    def __init__(self, width: int = 1, *, taps: int):
        if not 0 <= taps <= 127:
            self._MustUse__silence = True      # refused, so never meant to be elaborated
            raise ValueError(f"DELAYG DEL_VALUE is 0..127 taps, not {taps}")
        self.width = width
        self.taps = taps
        super().__init__({"a": In(width), "z": Out(width)})

    @property
    def delay_ps(self) -> int:
        """Nominal delay (``taps`` x 25 ps)."""
        return self.taps * DELAY_TAP_PS

    def elaborate(self, platform):
        ecp5 = _require_ecp5_or_sim(platform, "DELAYG")
        m = Module()
        if ecp5:
            for bit in range(self.width):
                m.submodules[f"delay{bit}"] = Instance(
                    "DELAYG", p_DEL_MODE="USER_DEFINED", p_DEL_VALUE=self.taps,
                    i_A=self.a[bit], o_Z=self.z[bit])
            return m
        # Model: no time inside a combinational path in Amaranth's simulator (see module doc).
        m.d.comb += self.z.eq(self.a)
        return m


# ============================================================================ PLL

# EHXPLLL operating limits (ECP5 family data sheet, sysCLOCK PLL timing), MHz.
_F_IN = (Fraction(8), Fraction(400))
_F_PFD = (Fraction(3125, 1000), Fraction(400))
_F_VCO = (Fraction(400), Fraction(800))
_F_OUT = (Fraction(3125, 1000), Fraction(400))
_DIV_MAX = 128


@dataclass(frozen=True)
class PLLConfig:
    """EHXPLLL dividers: ``CLKOP = f_in / clki_div * clkfb_div`` (feedback from CLKOP),
    ``VCO = CLKOP * out_divs[0]``, output *k* = ``VCO / out_divs[k]``."""
    f_in: Fraction
    clki_div: int
    clkfb_div: int
    out_divs: tuple[int, ...]

    @property
    def f_vco(self) -> Fraction:
        return self.f_in / self.clki_div * self.clkfb_div * self.out_divs[0]

    @property
    def f_out(self) -> tuple[Fraction, ...]:
        return tuple(self.f_vco / d for d in self.out_divs)


def pll_dividers(f_in_mhz, f_out_mhz) -> PLLConfig:
    """Dividers giving every frequency in ``f_out_mhz`` (1 to 4 outputs, MHz) exactly.

    Raises :class:`ValueError` if no setting within the EHXPLLL limits gives them exactly.
    """
    f_in = Fraction(f_in_mhz)
    outs = [Fraction(f) for f in f_out_mhz]
    if not 1 <= len(outs) <= 4:
        raise ValueError("EHXPLLL has 1 to 4 outputs")
    if not _F_IN[0] <= f_in <= _F_IN[1]:
        raise ValueError(f"EHXPLLL input {float(f_in)} MHz is outside {float(_F_IN[0])}..{float(_F_IN[1])} MHz")
    for f in outs:
        if not _F_OUT[0] <= f <= _F_OUT[1]:
            raise ValueError(f"EHXPLLL output {float(f)} MHz is outside {float(_F_OUT[0])}..{float(_F_OUT[1])} MHz")
    best = None
    for clki_div in range(1, _DIV_MAX + 1):
        f_pfd = f_in / clki_div
        if f_pfd < _F_PFD[0]:
            break
        if f_pfd > _F_PFD[1]:
            continue
        ratio = outs[0] / f_pfd
        if ratio.denominator != 1 or not 1 <= ratio <= _DIV_MAX:
            continue
        for op_div in range(1, _DIV_MAX + 1):
            f_vco = outs[0] * op_div
            if not _F_VCO[0] <= f_vco <= _F_VCO[1]:
                continue
            divs = [f_vco / f for f in outs]
            if all(d.denominator == 1 and 1 <= d <= _DIV_MAX for d in divs):
                cfg = PLLConfig(f_in, clki_div, int(ratio), tuple(int(d) for d in divs))
                # A higher VCO gives less jitter.
                if best is None or cfg.f_vco > best.f_vco:
                    best = cfg
        if best is not None:
            return best
    raise ValueError(f"no EHXPLLL setting makes {[float(f) for f in outs]} MHz exactly from {float(f_in)} MHz")


_OUT_PORTS = ("CLKOP", "CLKOS", "CLKOS2", "CLKOS3")


class EHXPLLL(wiring.Component):
    """The ECP5 general-purpose PLL, outputs driving clock domains.

    Parameters
    ----------
    f_in_mhz : number
        Reference clock frequency (``clk_in``).
    outputs : dict[str, number]
        Clock domain name -> frequency (MHz), at most 4; the first is ``CLKOP``
        (the feedback path).  The domains are created by the caller; this
        component drives their clocks (on ECP5) and nothing else.
    lock_cycles : int
        Simulation model only: ``lock`` rises after this many cycles of the first output.

    Attributes
    ----------
    clk_in : In(1)
        Reference clock (from a pin).
    rst : In(1)
        PLL reset (``RST``).
    lock : Out(1)
        ``LOCK``: the outputs are stable (asynchronous to every output domain).
    """

    def __init__(self, f_in_mhz, outputs: dict, *, lock_cycles: int = 16):
        self.config = pll_dividers(f_in_mhz, list(outputs.values()))
        self.domains = list(outputs)
        #: Domain -> the net its clock is on (on ECP5: the PLL output; for clock constraints).
        self.clocks = {name: Signal(name=f"pll_{name}_clk") for name in self.domains}
        self.lock_cycles = lock_cycles
        super().__init__({"clk_in": In(1), "rst": In(1), "lock": Out(1)})

    @property
    def frequencies(self) -> dict[str, Fraction]:
        """Domain -> the frequency the dividers give (MHz), exactly the requested one."""
        return dict(zip(self.domains, self.config.f_out))

    def add_sim_clocks(self, sim) -> None:
        """Clock every output domain in ``sim`` (an ``amaranth.sim.Simulator``) at its frequency."""
        for name, f in self.frequencies.items():
            sim.add_clock(float(1 / (f * 1_000_000)), domain=name)

    def elaborate(self, platform):
        ecp5 = _require_ecp5_or_sim(platform, "EHXPLLL")
        m = Module()
        cfg = self.config
        if ecp5:
            params = {
                "p_PLLRST_ENA": "ENABLED", "p_INTFB_WAKE": "DISABLED", "p_STDBY_ENABLE": "DISABLED",
                "p_DPHASE_SOURCE": "DISABLED", "p_FEEDBK_PATH": "CLKOP",
                "p_CLKI_DIV": cfg.clki_div, "p_CLKFB_DIV": cfg.clkfb_div,
                "a_FREQUENCY_PIN_CLKI": str(float(cfg.f_in)),
                "a_ICP_CURRENT": "12", "a_LPF_RESISTOR": "8",
                "a_MFG_ENABLE_FILTEROPAMP": "1", "a_MFG_GMCREF_SEL": "2",
                "i_CLKI": self.clk_in, "i_RST": self.rst, "i_STDBY": Const(0),
                "i_PHASESEL0": Const(0), "i_PHASESEL1": Const(0), "i_PHASEDIR": Const(1),
                "i_PHASESTEP": Const(1), "i_PHASELOADREG": Const(1), "i_PLLWAKESYNC": Const(0),
                "i_ENCLKOP": Const(0), "o_LOCK": self.lock,
            }
            clkop = self.clocks[self.domains[0]]
            params["i_CLKFB"] = clkop
            for k, (port, name, div, f) in enumerate(zip(_OUT_PORTS, self.domains, cfg.out_divs, cfg.f_out)):
                mux = "ABCD"[k]
                params[f"p_{port}_ENABLE"] = "ENABLED"
                params[f"p_{port}_DIV"] = div
                params[f"p_{port}_CPHASE"] = div - 1
                params[f"p_{port}_FPHASE"] = 0
                params[f"p_OUTDIVIDER_MUX{mux}"] = f"DIV{mux}"
                params[f"a_FREQUENCY_PIN_{port}"] = str(float(f))
                out = self.clocks[name]
                params[f"o_{port}"] = out
                if k:
                    params[f"i_EN{port}"] = Const(0)
                m.d.comb += ClockSignal(name).eq(out)
            m.submodules.pll = Instance("EHXPLLL", **params)
            return m
        # Model: the simulator makes the clocks; lock after lock_cycles of the first output.
        count = Signal(range(self.lock_cycles + 1))
        m.domains.pll_model = cd = ClockDomain(local=True, reset_less=True)
        m.d.comb += cd.clk.eq(ClockSignal(self.domains[0]))
        with m.If(self.rst):
            m.d.pll_model += count.eq(0)
        with m.Elif(count != self.lock_cycles):
            m.d.pll_model += count.eq(count + 1)
        m.d.comb += self.lock.eq((count == self.lock_cycles) & ~self.rst)
        return m
