"""The pin-level simulation of a board: :class:`~wiretick.hdl.boards.top.BoardTop` from its pins, under cocotb.

The design simulated is the board top exactly as it is built, with the ECP5
primitives' behavioural models (:mod:`wiretick.hdl.ecp5io`) in place of the
Lattice cells.  :class:`PinHarness` only gives the two clocks the PLL makes on a
board (``sync``, the core; ``tx``, 125 MHz) a port each: the PLL model makes no
clock, and Verilog has no other way in.  Everything else enters and leaves
through the RGMII pins of the two PHYs:

- PHY 0 receives the market data: each capture frame as an RGMII waveform (DDR
  nibbles, preamble, SFD, FCS, 12-byte gaps; chosen frames with a wrong FCS);
- PHY 1 receives the host's register requests (the :class:`~wiretick.host.device.Device`
  API on a :class:`~wiretick.host.hostlink.HostLinkBackend` whose transport puts
  whole frames on those pins) and transmits the DATA packets, which the
  testbench decodes from the pins (:class:`wiretick.sim.rgmii.Decoder`) and hands
  to the same backend, which writes the ring a :class:`~wiretick.host.ring.Ring` follows.

The testbench is :mod:`wiretick.sim.pins_tb`; :func:`run_pins` builds the model
(Verilator, cached by hash) and runs it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import numpy as np
from amaranth.hdl import ClockSignal, Elaboratable, Module, Signal

from .build import MODEL_FLAGS, X_FAST, cached_dir, hash_inputs, public_ports_control, tool_version

__all__ = ["PinHarness", "PIN_TOP", "pins_verilog", "build_pins", "run_pins", "PinsError"]

PIN_TOP = "wiretick_pins"


class PinsError(RuntimeError):
    """The pin-level simulation could not be built or failed."""


class PinHarness(Elaboratable):
    """``BoardTop(board, sim=True)`` with its two PLL clocks as ports (``clk_sync``, ``clk_tx``)."""

    def __init__(self, board):
        from wiretick.hdl.boards.top import BoardTop
        self.board = BoardTop(board, sim=True)
        self.clk_sync = Signal()
        self.clk_tx = Signal()

    def ports(self) -> list:
        b = self.board
        out = [self.clk_sync, self.clk_tx, b.leds]
        for phy in (b.phy0, b.phy1):
            out += [phy.rx_clk, phy.rx_ctl, phy.rx_data, phy.tx_clk, phy.tx_ctl, phy.tx_data]
        return out

    def elaborate(self, platform):
        m = Module()
        m.submodules.board = self.board
        m.d.comb += [ClockSignal("sync").eq(self.clk_sync), ClockSignal("tx").eq(self.clk_tx)]
        return m


def pins_verilog(board_name: str) -> str:
    from amaranth.back import verilog

    from wiretick.hdl.boards import BOARDS
    h = PinHarness(BOARDS[board_name])
    return verilog.convert(h, name=PIN_TOP, ports=h.ports())


_ARGS = [*MODEL_FLAGS, *X_FAST, "-O2"]


def _control_file() -> str:
    """Make the harness's ports, and only them, visible to cocotb (see wiretick.sim.cocotb_run)."""
    ins = ["clk_sync", "clk_tx"] + [f"phy{i}__rx_{n}" for i in (0, 1) for n in ("clk", "ctl", "data")]
    outs = ["leds"] + [f"phy{i}__tx_{n}" for i in (0, 1) for n in ("clk", "ctl", "data")]
    return public_ports_control(PIN_TOP, {**dict.fromkeys(ins, True), **dict.fromkeys(outs, False)})


def build_pins(board_name: str) -> Path:
    """The cached Verilator build of the board's pin harness."""
    from .cocotb_run import runner_build
    text = pins_verilog(board_name)
    vlt = _control_file()
    key = hash_inputs(text, vlt, "pins", _ARGS, tool_version("cocotb"), tool_version("verilator"))

    def build(d: Path) -> None:
        src = d / f"{PIN_TOP}.v"
        src.write_text(text)
        runner_build("verilator", [src], PIN_TOP, d, _ARGS, vlt=vlt, error=PinsError, what="pin-level")

    return cached_dir("pins-verilator", key, build)


def run_pins(board_name: str, cases: list[dict], *, dma_dir: str | os.PathLike = "/dev/shm",
             out: str | os.PathLike | None = None) -> dict[str, dict]:
    """Run every case on one simulated board; {name: {"ticks", "counters", "result"}}.

    A case: ``name``, ``capture`` (path), ``config`` (DecodeConfig keywords), ``nslots``,
    ``bad`` (indices of frames sent with a wrong FCS).
    """
    from cocotb_tools.check_results import get_results

    from .cocotb_run import _runner
    build_dir = build_pins(board_name)
    own = out is None
    out = Path(tempfile.mkdtemp(prefix="wiretick-pins-")) if own else Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"wiretick-pins-{secrets.token_hex(4)}"
    from wiretick.hdl.boards import BOARDS
    job = {"cases": cases, "out": str(out), "dma_dir": str(dma_dir), "dma_prefix": prefix,
           "core_mhz": str(BOARDS[board_name].core_mhz)}
    (out / "job.json").write_text(json.dumps(job))
    env = {"WIRETICK_PINS_JOB": str(out / "job.json"),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
           "COCOTB_REWRITE_ASSERTION_FILES": "pins_tb.py"}
    log = out / "sim.log"
    results = out / "results.xml"
    try:
        try:
            _runner("verilator").test(test_module="wiretick.sim.pins_tb", hdl_toplevel=PIN_TOP,
                                      hdl_toplevel_lang="verilog", build_dir=build_dir, test_dir=out, extra_env=env,
                                      results_xml=str(results), log_file=log)
        except (SystemExit, RuntimeError) as e:
            raise PinsError(f"the pin-level run failed ({e}): {log.read_text(errors='replace')[-3000:]}") from None
        total, failed = get_results(results) if results.exists() else (0, 1)
        if failed or not total:
            raise PinsError(f"the pin-level run failed; the end of its log:\n{log.read_text(errors='replace')[-3000:]}")
        res = {}
        for c in cases:
            d = out / c["name"]
            res[c["name"]] = {"ticks": np.load(d / "ticks.npy"),
                              "counters": json.loads((d / "counters.json").read_text()),
                              "result": json.loads((d / "result.json").read_text())}
        return res
    finally:
        for p in Path(dma_dir).glob(f"{prefix}-*"):
            p.unlink(missing_ok=True)
        if own:
            shutil.rmtree(out, ignore_errors=True)
