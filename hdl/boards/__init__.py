"""The boards: one shared design (:class:`~wiretick.hdl.boards.top.BoardTop`), per-board data.

Each board is an amaranth-boards platform plus what ``constraints/<board>/`` adds
(``board.toml``: resource overrides, the oscillator, the core clock, the RGMII receive
delays, the LEDs; ``*.lpf``: preferences appended to the generated LPF, such as the
RGMII receive clocks' ``FREQUENCY PORT``).  :data:`BOARDS` names them::

    board = BOARDS["versa-ecp5-5g"]
    plan = board.plan(seed=1)            # amaranth.build.BuildPlan: RTLIL, Yosys script, LPF, commands
    plan.extract("build/")               # (wiretick.hdl.flow runs the tools step by step)
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from amaranth.build import Attrs, Pins, PinsN, Resource, Subsignal

from wiretick.host.errors import WiretickError

__all__ = ["Board", "BoardError", "SYNTH_OPTS", "SCRIPT_AFTER_SYNTH", "BOARDS", "CONSTRAINTS_DIR", "PhySpec", "load_board", "TX_MHZ", "RX_MHZ"]

#: ``constraints/`` at the top of the checkout (next to ``hdl/``).
CONSTRAINTS_DIR = Path(__file__).resolve().parents[2] / "constraints"

#: RGMII at 1 Gb/s: the transmit clock we make and the receive clocks the PHYs give.
TX_MHZ = 125
RX_MHZ = 125


#: LUT mapping with ``abc`` rather than ``abc9``.  Yosys 0.70's ``abc9`` (synth_ecp5's
#: LUT mapper) fails an assertion in ``ABC_OPS_REINTEGRATE`` on the whole board design
#: (``rtlil.cc``: "GetSize(conn.first) == GetSize(conn.second)"; with ``-noflatten``,
#: "count_id(wire->name) == 0" in the core's counter bank), although the core alone and
#: the board without the core each map.  synth_ecp5 runs up to its LUT mapping, ``abc``
#: maps to LUT4..LUT7 (as synth_ecp5 ``-noabc9`` did before it was removed), and
#: synth_ecp5 resumes at the cell mapping.
SYNTH_OPTS = "-run :map_luts"
SCRIPT_AFTER_SYNTH = """techmap -map +/lattice/latches_map.v
abc -dress -lut 4:7
clean
synth_ecp5 -top {top} -run map_cells:"""


class BoardError(WiretickError):
    """A board's constraints directory is missing or wrong."""


@dataclass(frozen=True)
class PhySpec:
    """One RGMII PHY: its amaranth-boards resource and where its receive delay comes from."""
    resource: tuple[str, int]
    #: DELAYG taps on RX_CTL/RXD (about 25 ps each), or None when the PHY delays RX_CLK itself.
    rx_delay_taps: int | None


@dataclass(frozen=True)
class Board:
    """A board the design builds for (see the module doc).

    Attributes
    ----------
    name, description : str
    device, package, speed : str
        The part, as the platform (and nextpnr's error messages) name it.
    clocks : dict[str, float]
        Clock domain -> constraint (MHz): ``sync`` (core), ``tx``, ``rx0`` (market data
        PHY), ``rx1`` (host-link PHY).
    constraints : Path
        Its ``constraints/`` directory.
    """
    name: str
    description: str
    constraints: Path
    platform_class: type = field(repr=False)
    osc_resource: str
    osc_mhz: Fraction
    reset_resource: str | None
    core_mhz: Fraction
    phys: tuple[PhySpec, ...]
    leds: tuple[str, ...]
    lpf_files: tuple[str, ...]
    removed: tuple[tuple[str, int], ...] = ()
    extra_resources: tuple = field(default=(), repr=False)

    @property
    def device(self) -> str:
        return self.platform_class.device

    @property
    def package(self) -> str:
        return self.platform_class.package

    @property
    def speed(self) -> str:
        return str(self.platform_class.speed)

    @property
    def clocks(self) -> dict[str, float]:
        return {"sync": float(self.core_mhz), "tx": float(TX_MHZ), "rx0": float(RX_MHZ), "rx1": float(RX_MHZ)}

    @property
    def top_name(self) -> str:
        """The toplevel's name in the build (file names, ``-top``)."""
        return "wiretick_" + self.name.replace("-", "_")

    def platform(self):
        """The amaranth-boards platform with our resources (removed ones gone, ours added)."""
        base = self.platform_class
        removed = set(self.removed)
        kept = [r for r in base.resources if (r.name, r.number) not in removed]
        cls = type(base.__name__ + "Wiretick", (base,), {"resources": kept + list(self.extra_resources)})
        return cls()

    def lpf_preferences(self) -> str:
        """Our LPF additions (the ``*.lpf`` files listed in ``board.toml``), as one text."""
        parts = []
        for f in self.lpf_files:
            path = self.constraints / f
            parts.append(f"# from constraints/{self.name}/{f}\n" + path.read_text())
        return "\n".join(parts)

    def top(self, *, sim: bool = False):
        """The board design; ``sim=True`` exposes the PHY pins and LEDs as ports (primitive models)."""
        from .top import BoardTop
        return BoardTop(self, sim=sim)

    def plan(self, seed: int = 1, **overrides):
        """``platform.prepare`` of the board design: an :class:`amaranth.build.run.BuildPlan`.

        ``overrides`` go to the platform's templates (``nextpnr_opts``,
        ``add_preferences``, ``script_after_synth``...): ``nextpnr_opts`` gets ``--seed``
        first, ``add_preferences`` comes after our LPF preferences, ``script_after_synth``
        after our LUT mapping (:data:`SCRIPT_AFTER_SYNTH`).
        """
        plat = self.platform()
        opts = overrides.pop("nextpnr_opts", "")
        prefs = overrides.pop("add_preferences", "")
        after = overrides.pop("script_after_synth", "")
        return plat.prepare(self.top(), name=self.top_name,
                            nextpnr_opts=f"--seed {int(seed)} {opts}".strip(),
                            add_preferences=self.lpf_preferences() + prefs,
                            synth_opts=SYNTH_OPTS,
                            script_after_synth=SCRIPT_AFTER_SYNTH.format(top=self.top_name) + "\n" + after,
                            **overrides)


# ------------------------------------------------------------------------ loading board.toml

_DIRS = {"i": "i", "o": "o", "io": "io", "o~": "o", "i~": "i"}


def _resource(spec: dict, where: str) -> Resource:
    try:
        subs = []
        pin_attrs = spec.get("pin_attrs", {})
        for sub, text in spec["pins"].items():
            d, *pins = text.split()
            if d not in _DIRS or not pins:
                raise BoardError(f"{where}: pin spec {text!r} of {sub} is not '<i|o|io|o~|i~> PIN...'")
            cls = PinsN if d.endswith("~") else Pins
            subs.append(Subsignal(sub, cls(" ".join(pins), dir=_DIRS[d]), *(
                [Attrs(**pin_attrs[sub])] if sub in pin_attrs else [])))
        return Resource(spec["name"], int(spec["number"]), *subs, Attrs(**spec.get("attrs", {})))
    except KeyError as e:
        raise BoardError(f"{where}: resource without {e}") from None


def load_board(directory: Path) -> Board:
    """A :class:`Board` from ``directory/board.toml`` (its name is the directory's)."""
    path = directory / "board.toml"
    try:
        cfg = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BoardError(f"no board description at {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"{path}: {e}") from None
    try:
        mod, _, cls = cfg["platform"].partition(":")
        platform_class = getattr(importlib.import_module(mod), cls)
        phys = tuple(PhySpec((p["resource"][0], int(p["resource"][1])),
                             None if p["rx_delay_taps"] < 0 else int(p["rx_delay_taps"])) for p in cfg["phy"])
        lpf = tuple(cfg.get("lpf", ()))
        for f in lpf:
            if not (directory / f).is_file():
                raise BoardError(f"{path}: lpf file {f} not found in {directory}")
        if len(phys) != 2:
            raise BoardError(f"{path}: the design needs 2 PHYs (market data, host link), not {len(phys)}")
        return Board(
            name=directory.name, description=cfg["description"], constraints=directory,
            platform_class=platform_class,
            osc_resource=cfg["oscillator"]["resource"], osc_mhz=Fraction(cfg["oscillator"]["mhz"]),
            reset_resource=cfg.get("reset"), core_mhz=Fraction(cfg["core_mhz"]),
            phys=phys, leds=tuple(cfg["leds"]), lpf_files=lpf,
            removed=tuple((r[0], int(r[1])) for r in cfg.get("remove", ())),
            extra_resources=tuple(_resource(r, str(path)) for r in cfg.get("resource", ())),
        )
    except (KeyError, IndexError) as e:
        raise BoardError(f"{path}: missing {e}") from None
    except (ImportError, AttributeError) as e:
        raise BoardError(f"{path}: platform {cfg.get('platform')!r}: {e}") from None


def _load_all() -> dict[str, Board]:
    if not CONSTRAINTS_DIR.is_dir():
        raise BoardError(f"constraints directory not found at {CONSTRAINTS_DIR} (boards build from a checkout)")
    return {b.name: b for b in (load_board(d) for d in sorted(CONSTRAINTS_DIR.iterdir()) if d.is_dir())}


#: Every board, by name (``wiretick build --list``).
BOARDS: dict[str, Board] = _load_all()
