"""Plot one symbol's best bid and offer and its trades over the day, as a PNG.

    python examples/plot_bbo.py feed.pcap -o bbo.png [--symbol AAPL]   # or --replay, or --ring NAME
"""

from __future__ import annotations

import sys

import numpy as np

from wiretick.host.book import BBO_DTYPE, TRADE_DTYPE, concat_rows
from wiretick.host.strategy import Strategy, run

try:
    from _common import open_source, parser
except ImportError:
    from examples._common import open_source, parser


class Collect(Strategy):
    """Keeps every BBO row and trade print (copies: the update's rows are views)."""

    def __init__(self) -> None:
        self.bbo, self.trades = [], []

    def on_batch(self, ticks, update, books) -> None:
        self.bbo.append(update.bbo.copy())
        self.trades.append(update.trades.copy())


def plot(bbo: np.ndarray, trades: np.ndarray, symbol: str, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = int(bbo["ts_exch"].min()) if len(bbo) else 0
    span = (int(bbo["ts_exch"].max()) - t0) if len(bbo) else 0
    if span < 600e9:                                    # a short feed: seconds from its first change
        start = f"{t0 // 3_600_000_000_000:02d}:{t0 // 60_000_000_000 % 60:02d}:{t0 / 1e9 % 60:06.3f}"
        hours, xlabel = (lambda ts: (ts.astype(np.int64) - t0) / 1e9), f"seconds after {start}"
    else:
        hours, xlabel = (lambda ts: ts / 3.6e12), "time of day (hours)"
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    for side, colour in (("bid", "tab:blue"), ("ask", "tab:red")):
        px = np.where(bbo[f"{side}_px"] > 0, bbo[f"{side}_px"] / 1e4, np.nan)
        ax.step(hours(bbo["ts_exch"]), px, where="post", color=colour, lw=0.9, label=f"best {side}")
    t = trades[(trades["price"] > 0) & trades["printable"]]
    biggest = max(1, int(t["shares"].max())) if len(t) else 1
    ax.scatter(hours(t["ts_exch"]), t["price"] / 1e4, s=6 + 30 * t["shares"] / biggest,
               color="black", alpha=0.6, zorder=3, label="trades")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("price ($)")
    ax.set_title(f"{symbol}: best bid and offer, and trades")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None, out=sys.stdout):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("-o", "--output", required=True, help="PNG to write")
    p.add_argument("--symbol", help="the symbol (default: the one with the most BBO changes)")
    args = p.parse_args(argv)
    strategy = Collect()
    with open_source(args) as src:
        res = run(strategy, src)
    bbo = concat_rows(strategy.bbo, BBO_DTYPE)
    trades = concat_rows(strategy.trades, TRADE_DTYPE)
    if args.symbol:
        loc = res.books.symbols.locate(args.symbol)
        if loc is None:
            raise SystemExit(f"plot_bbo: {args.symbol} is not in the feed's directory")
    else:                                               # the busiest book (locate 0 if none changed)
        loc = int(np.bincount(bbo["locate"]).argmax()) if len(bbo) else 0
    name = res.books.symbols.symbol(loc) or f"locate {loc}"
    mine, prints = bbo[bbo["locate"] == loc], trades[trades["locate"] == loc]
    plot(mine, prints, name, args.output)
    print(f"{name}: {len(mine)} BBO changes, {len(prints)} prints -> {args.output}", file=out)
    return mine, prints, res


if __name__ == "__main__":
    main()
