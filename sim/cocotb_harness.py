"""The HDL side of the cocotb testbench: :class:`WiretickTop` plus two bulk transactors.

cocotb costs microseconds of Python for every clock edge a coroutine waits for,
so a testbench that drives the MAC and answers the AXI bus cycle by cycle from
Python spends most of its time there (about 50k cycles/s on Verilator, a
quarter of the bulk mode's speed: ``wiretick bench sim``).  The harness moves the two
cycle-by-cycle protocols into HDL buffers that Python fills and empties a block
at a time, and keeps the cycle-by-cycle path for comparison:

- **feeder** (MAC side): ``feed_word`` holds ``block`` entries of 72 bits (entry
  ``i`` at bits ``72*i``: the 71-bit MAC beat of
  :func:`~wiretick.hdl.common.mac_beat_layout`, then a valid bit).  Python writes a
  word and toggles ``feed_seq``; when the entries being played run out, the feeder
  loads the word (toggling ``feed_taken``) and plays one entry per cycle, idle
  entries (valid 0) being the gaps between frames.  Python writes the next word
  as soon as ``feed_taken`` changes: the MAC sees one beat every cycle, with no
  bubble between blocks.  Once the word is played and no other is pending, the
  MAC idles (valid 0).
- **capture** (host-memory side): an AXI4 write slave for one-beat bursts (the
  DMA engine's at 512 bits: a tick, or the shadow head) that stores each write
  (address, data, strobes: 640 bits, entry ``i`` at bits ``640*i`` of ``cap_data``)
  in a ring of ``depth`` entries and answers OKAY one cycle later.  ``cap_wr``
  counts the entries written (mod ``2*depth``) one cycle late, so that every entry
  it counts has been in ``cap_data`` for a whole cycle: an event-driven
  simulator (Icarus) may call Python after the count has changed but before a
  wide ``cap_data`` has.  Python commits entries into host memory (the ring
  files) and acknowledges by setting ``cap_rd`` to the count it has taken.
  ``cap_attn`` rises when only CAP_SLACK entries are free: Python then empties
  the ring before the next clock edge, so the bus is not stalled (a full ring
  would hold ``AWREADY``/``WREADY`` low, as slow memory does).  Python also
  empties it whenever it looks at host memory (between chunks of frames, after
  register reads).

With ``xtor_python`` high, the harness passes the top's ``mac`` and ``m_axi``
ports through instead, for the cycle-by-cycle cocotb transactors (the MAC beat
through one register stage: a MAC-to-parser pipeline register, which changes
no behaviour).  The register port ``s_axil`` is always the top's
(cocotbext-axi drives it).

Why registers at the inputs: Verilator re-evaluates, on every evaluation of
the model (several per clock cycle under cocotb), all the logic that depends
combinationally on a top-level input.  The reset (which enters the next-state
logic of every register), the MAC beat, the mode select and ``cap_rd`` would
pull nearly the whole design into that set; registered, it is evaluated only
after the clock edges that change it.  So the design's ``sync`` domain takes
its reset from ``rst`` one cycle late, which no test can tell apart.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.hdl.axi import AXI4LiteSignature, AXI4WriteSignature
from wiretick.hdl.common import mac_beat_layout
from wiretick.host.contract.registers import MAP_SIZE
from wiretick.hdl.top import WiretickTop, registered_reset_domains

__all__ = ["CocotbHarness", "HARNESS_NAME", "ENTRY_BITS", "CAP_BITS", "CAP_SLACK", "harness_verilog",
           "harness_ports"]

HARNESS_NAME = "wiretick_cocotb"
#: A feeder entry: the 71-bit MAC beat and a valid bit (9 bytes).
ENTRY_BITS = 72
#: A capture entry: address (64), data (512), strobes (64): 80 bytes.
CAP_BITS = 640
#: ``cap_attn`` rises when this few capture entries are free: the entry written in
#: the cycle Python is called (not counted yet), and the one in the next cycle
#: (``cap_rd`` takes effect one cycle late), still fit.
CAP_SLACK = 3
_MAC_BITS = mac_beat_layout(8).size


class CocotbHarness(wiring.Component):
    """:class:`WiretickTop` with the bulk feeder and capture transactors (see the module doc).

    Parameters
    ----------
    block : int
        Entries per ``feed_word``.
    depth : int
        Capture ring entries (a power of two, at least 8).
    top_kw : dict
        :class:`WiretickTop` parameters (its DMA data width must be 512).
    """

    def __init__(self, *, block: int = 32, depth: int = 32, **top_kw):
        if depth & (depth - 1) or depth < 8:
            raise ValueError("depth must be a power of two >= 8")
        if block < 2:
            raise ValueError("block must be at least 2")
        self.block = block
        self.depth = depth
        self.top_kw = top_kw
        if top_kw.get("dma_data_width", 512) != 512:
            raise ValueError("the capture transactor takes one-beat bursts: dma_data_width must be 512")
        ptr = 2 * depth
        super().__init__({
            "clk": In(1),
            "rst": In(1),
            "xtor_python": In(1),
            "mac": In(stream.Signature(mac_beat_layout(8), always_ready=True)),
            "m_axi": Out(AXI4WriteSignature(addr_width=64, data_width=512)),
            "s_axil": In(AXI4LiteSignature(addr_width=(MAP_SIZE - 1).bit_length(), data_width=32)),
            "feed_word": In(block * ENTRY_BITS),
            "feed_seq": In(1),
            "feed_taken": Out(1),
            "feed_left": Out(range(block + 1)),
            "cap_data": Out(depth * CAP_BITS),
            "cap_wr": Out(range(ptr)),
            "cap_rd": In(range(ptr)),
            "cap_attn": Out(1),
            "cap_errors": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        registered_reset_domains(m, self.clk, self.rst)
        m.submodules.top = top = WiretickTop(**self.top_kw)
        wiring.connect(m, wiring.flipped(self.s_axil), top.s_axil)
        K, D = self.block, self.depth
        # The mode is set before reset is released and never changes during a run.
        py = Signal()
        m.d.raw += py.eq(self.xtor_python)

        # ------------------------------------------------------------ feeder
        # The word is copied once per block into K entry registers and played
        # through a K-way multiplexer: cheaper to simulate than shifting a
        # K*72-bit register every cycle.
        ent = [Signal(ENTRY_BITS, name=f"feed_ent_{i}") for i in range(K)]
        idx = Signal(range(K))
        left = self.feed_left
        pending = self.feed_seq != self.feed_taken
        with m.If((left <= 1) & pending):
            m.d.sync += [e.eq(self.feed_word[ENTRY_BITS * i:ENTRY_BITS * (i + 1)]) for i, e in enumerate(ent)]
            m.d.sync += [left.eq(K), idx.eq(0), self.feed_taken.eq(self.feed_seq)]
        with m.Elif(left != 0):
            m.d.sync += [left.eq(left - 1), idx.eq(idx + 1)]
        head = Array(ent)[idx]
        # The multiplexer above is an ``always @*`` block in Verilog, which Icarus
        # first evaluates when an input changes: X until the first word.  ANDed
        # with ``left != 0`` (a continuous assignment, where 0 & X = 0) the MAC
        # sees a clean idle stream from the start.
        feed_valid = (left != 0) & head[_MAC_BITS]
        feed_payload = head[:_MAC_BITS] & feed_valid.replicate(_MAC_BITS)

        mac_valid = Signal()
        mac_payload = Signal(_MAC_BITS)
        m.d.raw += [mac_valid.eq(self.mac.valid), mac_payload.eq(self.mac.payload)]
        # Mux expressions, not If/Else: they become continuous assignments, which
        # every simulator evaluates at time 0 (a process on ``py``, which never
        # changes, might never run in Icarus).
        m.d.comb += [top.mac.valid.eq(Mux(py, mac_valid, feed_valid)),
                     top.mac.payload.eq(Mux(py, mac_payload, feed_payload))]

        # ------------------------------------------------------------ capture
        bus = top.m_axi
        slots = [Signal(CAP_BITS, name=f"slot_{i}") for i in range(D)]
        wr = Signal.like(self.cap_wr)
        m.d.sync += self.cap_wr.eq(wr)
        rd = Signal.like(self.cap_rd)
        m.d.raw += rd.eq(self.cap_rd)
        level = Signal(range(2 * D + 1))
        m.d.comb += [level.eq((wr - rd)[:len(wr)]), self.cap_data.eq(Cat(*slots))]
        take = Signal()
        m.d.comb += take.eq(~py & bus.awvalid & bus.wvalid & (level < D))
        bpend = Signal(range(64))
        with m.If(take):
            with m.Switch(wr[:len(wr) - 1]):
                for i in range(D):
                    with m.Case(i):
                        m.d.sync += slots[i].eq(Cat(bus.awaddr, bus.wdata, bus.wstrb))
            m.d.sync += wr.eq(wr + 1)
            with m.If((bus.awlen != 0) | ~bus.wlast):
                m.d.sync += self.cap_errors.eq(self.cap_errors + 1)   # not a one-beat burst
        b_taken = ~py & (bpend != 0) & bus.bready
        with m.If(take & ~b_taken):
            m.d.sync += bpend.eq(bpend + 1)
        with m.Elif(~take & b_taken):
            m.d.sync += bpend.eq(bpend - 1)
        # Python sees entries one cycle late and ``rd`` follows ``cap_rd`` one cycle
        # late: the ring must not fill in the two cycles around a call.
        m.d.comb += self.cap_attn.eq(((self.cap_wr - rd)[:len(wr)]) >= D - CAP_SLACK)

        m.d.comb += [
            bus.awready.eq(Mux(py, self.m_axi.awready, take)), bus.wready.eq(Mux(py, self.m_axi.wready, take)),
            bus.bvalid.eq(Mux(py, self.m_axi.bvalid, bpend != 0)), bus.bresp.eq(Mux(py, self.m_axi.bresp, 0)),
        ]
        m.d.comb += [
            self.m_axi.awaddr.eq(bus.awaddr), self.m_axi.awlen.eq(bus.awlen), self.m_axi.awsize.eq(bus.awsize),
            self.m_axi.awburst.eq(bus.awburst), self.m_axi.awcache.eq(bus.awcache),
            self.m_axi.awprot.eq(bus.awprot), self.m_axi.awvalid.eq(bus.awvalid),
            self.m_axi.wdata.eq(bus.wdata), self.m_axi.wstrb.eq(bus.wstrb), self.m_axi.wlast.eq(bus.wlast),
            self.m_axi.wvalid.eq(bus.wvalid), self.m_axi.bready.eq(bus.bready),
        ]
        return m


def harness_ports(**kw) -> dict[str, bool]:
    """The harness's Verilog ports (``kw`` to its constructor): {name: is an input}.

    These are the only signals the testbench touches; the Verilator build makes
    just them visible to VPI (see :mod:`wiretick.sim.cocotb_run`).
    """
    from amaranth.hdl import Const

    dut = CocotbHarness(**kw)
    dut._MustUse__silence = True     # only its signature is wanted, not its logic
    ports = {}
    for path, member, value in dut.signature.flatten(dut):
        if isinstance(value, Const):          # an always-ready stream's ready: no port
            continue
        ports["__".join(str(p) for p in path)] = member.flow == In
    return ports


def harness_verilog(name: str = HARNESS_NAME, **kw) -> str:
    """Verilog of :class:`CocotbHarness` (``kw`` to its constructor)."""
    from amaranth.back import verilog

    from wiretick.hdl.common import toplevel_ports
    dut = CocotbHarness(**kw)
    return verilog.convert(dut, name=name, ports=toplevel_ports(dut))
