"""The board registry and designs: each board's build plan prepares with our constraints in it,
the Colorlight's shared management pins are solved, and the board top runs in simulation
from its pins.  (Board builds through yosys/nextpnr are wiretick.hdl.flow's tests.)"""

from __future__ import annotations

import re
import pytest

from wiretick.hdl.boards import BOARDS, BoardError, load_board
from wiretick.hdl.ecp5io import pll_dividers


def _text(f):
    return f if isinstance(f, str) else f.decode()


@pytest.fixture(scope="module", params=sorted(BOARDS))
def prepared(request):
    board = BOARDS[request.param]
    plan = board.plan(seed=3)
    return board, plan, _text(plan.files[board.top_name + ".lpf"]), _text(plan.files[board.top_name + ".il"])


def test_registry_names_the_boards_and_their_parts():
    assert set(BOARDS) == {"versa-ecp5-5g", "colorlight-5a75b"}
    v, c = BOARDS["versa-ecp5-5g"], BOARDS["colorlight-5a75b"]
    assert (v.device, v.package, v.speed) == ("LFE5UM5G-45F", "BG381", "8")
    assert (c.device, c.package, c.speed) == ("LFE5U-25F", "BG256", "6")
    for b in (v, c):
        assert b.clocks == {"sync": float(b.core_mhz), "tx": 125.0, "rx0": 125.0, "rx1": 125.0}
        assert b.description and b.name in str(b.constraints)


def test_plan_carries_every_constraint_file_and_the_seed(prepared):
    board, plan, lpf, _il = prepared
    for f in board.lpf_files:
        for line in (board.constraints / f).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                assert line in lpf
    script = _text(plan.files[f"build_{board.top_name}.sh"])
    assert "--seed 3" in script
    # LUTs mapped by abc, not abc9 (which crashes on the whole board: SYNTH_OPTS)
    ys = [line.strip() for line in _text(plan.files[f"{board.top_name}.ys"]).splitlines()]
    i = ys.index(f"synth_ecp5 -run :map_luts -top {board.top_name}")
    assert ys[i + 1:i + 5] == ["techmap -map +/lattice/latches_map.v", "abc -dress -lut 4:7", "clean",
                               f"synth_ecp5 -top {board.top_name} -run map_cells:"]


def test_every_rgmii_rx_clock_is_constrained_on_a_port_that_exists(prepared):
    board, _plan, lpf, _il = prepared
    located = set(re.findall(r'LOCATE COMP "([^"]+)"', lpf))
    freq_ports = dict(re.findall(r'FREQUENCY PORT "([^"]+)" ([0-9.]+ ?[MH]*Z)', lpf))
    for phy in board.phys:
        port = f"{phy.resource[0]}_{phy.resource[1]}__rx_clk__io"
        assert port in located, f"{port} is not a port of the design: the constraint would be ignored"
        assert freq_ports[port].replace(" ", "") == "125MHZ"
    # the oscillator (amaranth-boards) and the PLL outputs (ours) are constrained too
    assert any(p.startswith(board.osc_resource) for p in freq_ports)
    nets = dict(re.findall(r'FREQUENCY NET "([^"]+)" ([0-9.e+]+) HZ', lpf))
    assert sorted(float(f) for f in nets.values()) == sorted([float(board.core_mhz) * 1e6, 125e6])


def test_primitives_and_pll_in_the_netlist(prepared):
    board, _plan, _lpf, il = prepared
    cells = re.findall(r"^\s*cell \\(\w+) ", il, re.M)
    delayed = sum(1 for p in board.phys if p.rx_delay_taps is not None)
    assert cells.count("DELAYG") == 5 * delayed                 # RX_CTL + RXD[3:0] per delayed PHY
    assert cells.count("IDDRX1F") == 10                         # both PHYs' receive pins
    assert cells.count("ODDRX1F") == 6                          # the host PHY's TXC, TX_CTL, TXD[3:0]
    assert cells.count("EHXPLLL") == 1
    cfg = pll_dividers(board.osc_mhz, (125, board.core_mhz))
    pll = il[il.index("cell \\EHXPLLL"):]
    pll = pll[:pll.index("\n  end")]
    assert re.search(rf"parameter \\CLKI_DIV {cfg.clki_div}\b", pll)
    assert re.search(rf"parameter \\CLKFB_DIV {cfg.clkfb_div}\b", pll)


def test_colorlight_shared_management_pins_requested_once(prepared):
    board, _plan, lpf, _il = prepared
    sites = re.findall(r'LOCATE COMP "[^"]+" SITE "([^"]+)"', lpf)
    assert len(sites) == len(set(sites)), "a pin is placed twice"
    if board.name == "colorlight-5a75b":
        for pin in ("P5", "P3", "T2"):          # PHY reset, MDC, MDIO: shared by both PHYs
            assert sites.count(pin) == 1


def test_amaranth_boards_alone_cannot_request_both_colorlight_phys():
    """The problem constraints/colorlight-5a75b solves (if this starts passing, drop our override)."""
    from amaranth.build.res import ResourceError
    plat = BOARDS["colorlight-5a75b"].platform_class()
    plat.request("eth_rgmii", 0, dir="-")
    with pytest.raises(ResourceError, match="P5, but it is already used"):
        plat.request("eth_rgmii", 1, dir="-")
    ours = BOARDS["colorlight-5a75b"].platform()
    ours.request("eth_rgmii", 0, dir="-")
    ours.request("eth_rgmii", 1, dir="-")
    ours.request("eth_mgmt", 0, dir="-")


def test_bad_board_descriptions_are_refused(tmp_path):
    with pytest.raises(BoardError, match="no board description"):
        load_board(tmp_path)
    (tmp_path / "board.toml").write_text("platform = 'amaranth_boards.versa_ecp5_5g:Nope'\n")
    with pytest.raises(BoardError, match="Nope"):
        load_board(tmp_path)
    src = (BOARDS["versa-ecp5-5g"].constraints / "board.toml").read_text()
    (tmp_path / "board.toml").write_text(src)
    with pytest.raises(BoardError, match="clocks.lpf not found"):
        load_board(tmp_path)
    (tmp_path / "clocks.lpf").write_text("")
    assert load_board(tmp_path).device == "LFE5UM5G-45F"


def test_board_top_refuses_the_wrong_mode():
    from amaranth.hdl import Fragment
    board = BOARDS["versa-ecp5-5g"]
    with pytest.raises(ValueError, match="simulation"):
        Fragment.get(board.top(sim=True), board.platform())
    with pytest.raises(ValueError, match="simulation"):
        Fragment.get(board.top(sim=False), None)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_top_simulates_from_its_pins(name):
    """The board as built (primitive models in place of the cells): RGMII frames on PHY 0's
    pins reach the parser (link and activity LEDs light); nothing is sent to the host
    before it enables the DMA (PHY 1's TX_CTL stays low); no overflow."""
    from amaranth.sim import Simulator

    from wiretick.hdl.rgmii_rx import drive_rgmii, rgmii_symbols
    from wiretick.host.frames import encode_message, mold_packet, udp_frame

    board = BOARDS[name]
    top = board.top(sim=True)
    top.led_ms = 0.2                  # 10 us at 50 MHz: visible within the simulation
    frames = [udp_frame(mold_packet(1 + i, [encode_message("D", stock_locate=1, order_ref=i)])) for i in range(3)]
    seen = {f: 0 for f in board.leds}
    tx_en = []
    done = []

    async def phy0(ctx):
        await drive_rgmii(ctx, top.phy0, [(0, 0, 0)] * 100 + rgmii_symbols(frames) + [(0, 0, 0)] * 100)
        done.append(True)

    async def phy1(ctx):
        await drive_rgmii(ctx, top.phy1, [(0, 0, 0)] * 800)

    async def watch(ctx):
        while not done:
            await ctx.tick("sync")
            leds = ctx.get(top.leds)
            for i, f in enumerate(board.leds):
                seen[f] |= leds >> i & 1
            tx_en.append(ctx.get(top.phy1.tx_ctl))

    sim = Simulator(top)
    top.add_sim_clocks(sim)
    sim.add_testbench(phy0)
    sim.add_testbench(phy1, background=True)
    sim.add_testbench(watch)
    sim.run()
    expect = {"link": 1, "activity": 1, "overflow": 0, "status": 1}
    assert seen == {f: expect[f] for f in board.leds}
    assert not any(tx_en)
