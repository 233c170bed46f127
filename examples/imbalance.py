"""A BBO-imbalance signal (event style: a callback per change of a best bid or offer).

    python examples/imbalance.py feed.pcap       # or --replay, or --ring NAME

imbalance = (bid size - ask size) / (bid size + ask size) at the touch, in [-1, 1];
the example checks how often its sign foretells the next move of the mid price.
"""

from __future__ import annotations

import sys

import numpy as np

from wiretick.host.strategy import EventStrategy, run

try:
    from _common import open_source, parser
except ImportError:
    from examples._common import open_source, parser


class Imbalance(EventStrategy):
    def __init__(self) -> None:
        self.last_mid = {}                            # locate -> (mid, imbalance) at the last two-sided quote
        self.signals: list[tuple[int, int, float]] = []   # (seq, locate, imbalance)
        self.hits = 0
        self.calls = 0

    def on_bbo(self, row, books) -> None:
        bid, ask, bs, as_ = int(row["bid_px"]), int(row["ask_px"]), int(row["bid_sz"]), int(row["ask_sz"])
        if not bid or not ask or bid >= ask:          # one-sided or crossed: no signal
            return
        loc = int(row["locate"])
        imb = (bs - as_) / (bs + as_)
        mid = bid + ask
        prev = self.last_mid.get(loc)
        if prev is not None and mid != prev[0]:
            self.calls += 1
            self.hits += (mid > prev[0]) == (prev[1] > 0)
        self.last_mid[loc] = (mid, imb)
        self.signals.append((int(row["seq"]), loc, imb))

    @property
    def hit_rate(self) -> float:
        return self.hits / self.calls if self.calls else float("nan")


def main(argv: list[str] | None = None, out=sys.stdout):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    strategy = Imbalance()
    with open_source(args) as src:
        res = run(strategy, src)
    sig = np.array([s[2] for s in strategy.signals])
    print(f"{len(sig)} signals, mean |imbalance| {np.abs(sig).mean() if len(sig) else 0:.3f}; "
          f"sign foretold {strategy.hits} of {strategy.calls} mid moves ({strategy.hit_rate:.1%})", file=out)
    print(f"{res.ticks} ticks in {res.seconds:.2f} s", file=out)
    return strategy, res


if __name__ == "__main__":
    main()
