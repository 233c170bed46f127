"""A strategy that respects halts and gaps: it quotes a symbol only while it may and its book is sound.

    python examples/halts_gaps.py feed.pcap      # or --replay, or --ring NAME

At each change of a best bid or offer it decides whether it would quote that symbol: the market is open
(system event 'Q'), the symbol is tradable (no H halt, pause or quotation-only
period, no operational halt), its book is not stale (no gap, lap or overwrite
since it was last known good), two-sided and not crossed.  On a gap it pulls
every quote and stays out: ITCH has no snapshot, so a book that missed messages
stays suspect until someone recovers it (docs/strategies.md).
"""

from __future__ import annotations

import sys

import numpy as np

from wiretick.host.strategy import EventStrategy, run

try:
    from _common import open_source, parser
except ImportError:
    from examples._common import open_source, parser


class Careful(EventStrategy):
    def __init__(self) -> None:
        self.timeline: list[tuple[int, int, bool]] = []   # (seq, locate, would quote) at each BBO change
        self.quoted = np.zeros(1 << 16, bool)        # ever quoted, per locate
        self.pulled: list[tuple[int, str]] = []      # (seq, why) each time it pulled everything

    def on_bbo(self, row, books) -> None:
        loc = int(row["locate"])
        ok = (books.state.market_open and books.state.tradable(loc) and not books.stale[loc]
              and 0 < row["bid_px"] < row["ask_px"])
        self.quoted[loc] |= ok
        self.timeline.append((int(row["seq"]), loc, bool(ok)))

    def on_H(self, tick, books) -> None:
        if not books.state.tradable(int(tick["locate"])):
            pass                                     # a real strategy cancels this symbol's quotes here

    def on_gap(self, tick, books) -> None:
        self.pulled.append((int(tick["seq"]), "gap"))   # a real strategy cancels every quote here

    def on_stale(self, books, reason) -> None:
        if reason != "gap":                          # lapped or overwritten ring batches
            self.pulled.append((books.stale_since, reason))


def main(argv: list[str] | None = None, out=sys.stdout):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    strategy = Careful()
    with open_source(args) as src:
        res = run(strategy, src)
    active = sum(1 for *_, ok in strategy.timeline if ok)
    print(f"quoted {int(strategy.quoted.sum())} symbols, at {active} of {len(strategy.timeline)} BBO changes; "
          f"pulled out {len(strategy.pulled)} times {[why for _, why in strategy.pulled][:3]}", file=out)
    return strategy, res


if __name__ == "__main__":
    main()
