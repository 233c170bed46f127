"""The symbol directory and trading state a feed carries, per stock locate.

Both are plain per-locate numpy arrays that the compiled book pass
(:mod:`wiretick.host.book`) writes as it meets the messages, in tick order:

- :class:`SymbolDirectory`, from ``R`` (Stock Directory): symbol, market
  category, round lot, the directory's flag bytes and the ETP leverage.  A
  locate that never had an ``R`` (a capture that starts mid-day) still gets its
  symbol from the first message that names its stock (``H``, ``Y``, ``L``,
  ``K``, ``J``, ``h``, ``N``, ``O``): ``source`` says which.
- :class:`TradingState`, from ``H`` (trading action), ``h`` (operational halt,
  per market), ``Y`` (Reg SHO), ``Q`` (cross completed) and ``S`` (system
  events, session-wide).

Reading them costs nothing per tick: the arrays are indexed by locate.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["SymbolDirectory", "TradingState", "SOURCE_NONE", "SOURCE_R", "SOURCE_OTHER",
           "DIR_FIELDS", "STATE_FIELDS", "parse_symbols"]

NLOC = 1 << 16

#: Columns of the directory array (uint64, one row per locate).
DIR_FIELDS = ("symbol", "market_category", "round_lot", "attrs", "etp_leverage", "source")
D_SYMBOL, D_MKT, D_LOT, D_ATTRS, D_ETP, D_SRC = range(len(DIR_FIELDS))
SOURCE_NONE, SOURCE_R, SOURCE_OTHER = 0, 1, 2

#: Columns of the trading-state array (uint8 ASCII codes, 0 = never reported).
STATE_FIELDS = ("trading", "reg_sho", "halt_Q", "halt_B", "halt_X", "last_cross")
S_TRADING, S_REGSHO, S_HALT_Q, S_HALT_B, S_HALT_X, S_CROSS = range(len(STATE_FIELDS))

# Bytes 25..32 of R in the tick's order_ref (docs/tick.md), by name.
_ATTR_BYTES = {"round_lots_only": 0, "issue_classification": 1, "issue_subtype": (2, 4), "authenticity": 4,
               "short_sale_threshold": 5, "ipo_flag": 6, "luld_ref_price_tier": 7}


def parse_symbols(text: str | Iterable[str]) -> list[str]:
    """``"AAPL,msft"`` or ``["AAPL", "MSFT"]`` -> ``["AAPL", "MSFT"]`` (ITCH symbols are 1..8 characters)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = [s.strip().upper() for s in items if s.strip()]
    bad = [s for s in out if len(s) > 8 or not s.isascii()]
    if bad:
        raise ValueError(f"not an ITCH symbol (1..8 ASCII characters): {bad[0]!r}")
    return out


def _pack(symbol: str) -> int:
    return int.from_bytes(symbol.ljust(8).encode("ascii"), "little")


class SymbolDirectory:
    """Locate -> symbol and stock-directory fields; ``table`` is the uint64[65536, 6] the book pass writes."""

    def __init__(self) -> None:
        self.table = np.zeros((NLOC, len(DIR_FIELDS)), np.uint64)

    def clear(self) -> None:
        self.table[:] = 0

    @property
    def known(self) -> np.ndarray:
        """The locates whose symbol is known (from ``R`` or another message naming the stock)."""
        return np.flatnonzero(self.table[:, D_SRC])

    def symbols(self) -> np.ndarray:
        """``S8`` per locate (space-padded as on the wire; ``b''`` where unknown)."""
        return np.ascontiguousarray(self.table[:, D_SYMBOL]).view("S8")

    def symbol(self, locate: int) -> str | None:
        """The symbol of ``locate`` (stripped), or None."""
        if not self.table[locate, D_SRC]:
            return None
        return int(self.table[locate, D_SYMBOL]).to_bytes(8, "little").decode("ascii", "replace").rstrip()

    def names(self, locates: np.ndarray) -> np.ndarray:
        """Symbols (str objects, ``""`` where unknown) for an array of locates: vectorised over distinct locates."""
        locates = np.asarray(locates)
        uniq, inv = np.unique(locates, return_inverse=True)
        text = np.array([self.symbol(int(u)) or "" for u in uniq], dtype=object)
        return text[inv.reshape(locates.shape)]

    def locate(self, symbol: str) -> int | None:
        """The locate of ``symbol``, or None when the feed has not named it."""
        hits = np.flatnonzero((self.table[:, D_SYMBOL] == np.uint64(_pack(symbol.upper())))
                              & (self.table[:, D_SRC] != 0))
        return int(hits[0]) if len(hits) else None

    def locates(self, symbols: str | Iterable[str], *, strict: bool = True) -> np.ndarray:
        """uint16 locates of ``symbols``; an unknown symbol raises ``KeyError`` unless ``strict`` is False."""
        out = []
        for s in parse_symbols(symbols):
            loc = self.locate(s)
            if loc is None:
                if strict:
                    raise KeyError(f"symbol {s!r} is not in the feed's directory")
                continue
            out.append(loc)
        return np.array(out, np.uint16)

    def round_lot(self, locate: int) -> int:
        return int(self.table[locate, D_LOT])

    def market_category(self, locate: int) -> str:
        v = int(self.table[locate, D_MKT])
        return chr(v) if v else ""

    def attribute(self, locate: int, name: str) -> str:
        """One of the R flags carried in the tick (``round_lots_only``, ``issue_classification``, ...)."""
        raw = int(self.table[locate, D_ATTRS]).to_bytes(8, "little")
        where = _ATTR_BYTES[name]
        part = raw[where[0]:where[1]] if isinstance(where, tuple) else raw[where:where + 1]
        return part.decode("ascii", "replace").strip("\0")

    def as_dict(self) -> dict[int, str]:
        return {int(i): self.symbol(int(i)) for i in self.known}


class TradingState:
    """Per-locate trading state (``table``: uint8[65536, 6] of ASCII codes) and the session's last ``S`` event.

    ``trading``: H's trading state (``T`` trading, ``H`` halted, ``P`` paused,
    ``Q`` quotation only); ``halt_Q``/``halt_B``/``halt_X``: h's halt action
    (``H`` halted, ``T`` resumed) per market; ``reg_sho``: Y's action
    (``0``/``1``/``2``); ``last_cross``: the cross type of the last ``Q``.
    """

    def __init__(self) -> None:
        self.table = np.zeros((NLOC, len(STATE_FIELDS)), np.uint8)
        self.system_event = 0          # set by the book pass (ASCII code of the last S event)

    def clear(self) -> None:
        self.table[:] = 0
        self.system_event = 0

    def code(self, locate: int, field: str) -> str:
        v = int(self.table[locate, STATE_FIELDS.index(field)])
        return chr(v) if v else ""

    def halted(self) -> np.ndarray:
        """bool[65536]: a locate may not trade: H says halted/paused/quotation only, or an operational halt is on."""
        t = self.table
        h = np.isin(t[:, S_TRADING], np.frombuffer(b"HPQ", np.uint8))
        h |= (t[:, S_HALT_Q:S_HALT_X + 1] == ord("H")).any(axis=1)
        return h

    def tradable(self, locate: int) -> bool:
        """True unless ``locate`` is halted, paused, in quotation only or operationally halted."""
        t = self.table[locate]
        return t[S_TRADING] not in b"HPQ" and ord("H") not in t[S_HALT_Q:S_HALT_X + 1]

    @property
    def market_open(self) -> bool:
        """The last ``S`` event was 'Q' (start of market hours) and no 'M' (end of market hours) since."""
        return self.system_event == ord("Q")
