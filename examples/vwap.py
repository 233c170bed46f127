"""VWAP per symbol from the books' trade prints (batch style, vectorised).

    python examples/vwap.py feed.pcap            # or --replay, or --ring NAME

Executions print at the resting order's price (E, which the message does not
carry: the book knows it), printable C at their own price, and P; crosses (Q)
are left out.
"""

from __future__ import annotations

import sys

import numpy as np

from wiretick.host.strategy import Strategy, run

try:
    from _common import open_source, parser
except ImportError:                                   # imported as examples.vwap
    from examples._common import open_source, parser


class VwapFromPrints(Strategy):
    def __init__(self) -> None:
        self.notional = np.zeros(1 << 16)             # shares * Price(4), per locate
        self.volume = np.zeros(1 << 16, np.int64)

    def on_batch(self, ticks, update, books) -> None:
        p = update.trades
        keep = p["printable"] & (p["price"] > 0) & (p["kind"] != ord("Q")) & (p["kind"] != ord("B"))
        p = p[keep]
        np.add.at(self.volume, p["locate"], p["shares"].astype(np.int64))
        np.add.at(self.notional, p["locate"], p["shares"] * p["price"].astype(np.float64))

    def result(self) -> dict[int, tuple[int, float]]:
        """{locate: (volume, notional in Price(4) units)}, as wiretick.host.strategy.Vwap reports it."""
        return {int(i): (int(self.volume[i]), float(self.notional[i])) for i in np.flatnonzero(self.volume)}


def main(argv: list[str] | None = None, out=sys.stdout):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    strategy = VwapFromPrints()
    with open_source(args) as src:
        res = run(strategy, src)
    names = res.books.symbols
    top = sorted(strategy.result().items(), key=lambda kv: -kv[1][0])[:10]
    for loc, (vol, notional) in top:
        print(f"{names.symbol(loc) or loc:>8}  volume {vol:>10}  VWAP {notional / vol / 1e4:10.4f}", file=out)
    print(f"{res.ticks} ticks in {res.batches} batches, {res.seconds:.2f} s", file=out)
    return strategy, res


if __name__ == "__main__":
    main()
