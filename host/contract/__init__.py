"""The contract between the gateware and the host: everything both sides must agree on.

Each fact about the device is written once, here, and both sides derive from it:
the gateware (:mod:`wiretick.hdl`) builds its parser, register file and DMA engine
from these tables, the host (:mod:`wiretick.host`) reads the device through them,
and the tables of ``docs/tick.md``, ``docs/ring.md``, ``docs/registers.md`` and
``docs/hostlink.md`` are generated from them (``python -m wiretick.host.docgen``).

- :mod:`.formats`: ITCH 5.0 messages, MoldUDP64, the tick, the message-to-tick map,
  the tick's flag bits and event kind, the parser's counters;
- :mod:`.ring`: the tick ring's layout (slots, control page, lap tag) and the pure
  functions of it;
- :mod:`.registers`: the register map (names, offsets, widths, access, reset values,
  the counter block, the DMA states) and the host's access to it by name;
- :mod:`.linkproto`: the UDP host link's packets (boards without PCIe).

The contract imports numpy and the standard library only (and
:mod:`wiretick.host.errors`), so that either side can import it without the other.
"""
