"""Stage 3: message assembler.

Collects the bytes of each ITCH message, whatever its alignment in the beats,
into a buffer indexed by message byte, and presents the whole message in the
cycle of the beat holding its last byte: earlier bytes from the buffer, the last
ones straight from the beat.  The output is combinational from the input.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .common import MAX_MSG_LEN
from .splitter import split_beat_layout

__all__ = ["MessageAssembler", "message_layout"]


def message_layout() -> data.StructLayout:
    """One complete ITCH message.

    Fields
    ------
    bytes : ArrayLayout(8, MAX_MSG_LEN)
        The message, byte 0 = type byte; bytes past its length are don't-care.
    type : 8
        ITCH type byte.
    index : 16
        Block number within the packet.
    """
    return data.StructLayout({
        "bytes": data.ArrayLayout(unsigned(8), MAX_MSG_LEN),
        "type": unsigned(8),
        "index": unsigned(16),
    })


class MessageAssembler(wiring.Component):
    """Assemble message bodies described by the splitter's slots.

    Each beat writes the bytes of one message into the buffer: the message starting
    in this beat (``nxt``) if any, else the one continuing (``msg``).  The beat is
    rotated by the message's alignment (a barrel shifter) and written under a byte
    mask.  A message that ends in this beat (``msg.done``) is read as buffer bytes
    below ``msg.off`` and rotated beat lanes from there on; the next message may
    overwrite the buffer at the same clock edge.

    Parameters
    ----------
    width : int
        Datapath width in bytes.

    Attributes
    ----------
    i_blk : In(stream.Signature(split_beat_layout(width), always_ready=True))
        Beats from :class:`~wiretick.hdl.splitter.BlockSplitter`.
    o_msg : Out(stream.Signature(message_layout(), always_ready=True))
        Complete messages, combinationally, in the cycle of their last beat.
    """

    def __init__(self, width: int = 8):
        self.width = width
        super().__init__({
            "i_blk": In(stream.Signature(split_beat_layout(width), always_ready=True)),
            "o_msg": Out(stream.Signature(message_layout(), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        N = MAX_MSG_LEN
        blk = self.i_blk.payload
        ones = Const((1 << 8 * N) - 1, 8 * N)

        def rotated(rot):
            """The beat rotated so that lane ``j`` holds message byte ``j`` (mod W),
            repeated over the whole message: a barrel shifter."""
            r = Cat(blk.data, blk.data).bit_select(rot * 8, 8 * W)
            return Cat(*[r] * -(-N // W))[:8 * N]

        idx_bits = (N + W).bit_length()

        def from_byte(j):
            """Mask of message bytes ``j`` and up (``j`` may be negative): a thermometer code."""
            byte = Mux(j < 0, 0, j)[:idx_bits]
            return (ones << Cat(Const(0, 3), byte))[:8 * N]

        # The buffer: one message, byte j at bits 8j..8j+7.
        buf = Signal(8 * N)

        # Each beat writes the bytes of one message: the one starting here if any,
        # else the one continuing.
        use_nxt = blk.nxt.valid
        w_off = Mux(use_nxt, blk.nxt.off, blk.msg.off)
        w_data = rotated(Mux(use_nxt, blk.nxt.rot, blk.msg.rot))
        w_mask = from_byte(w_off) & ~from_byte(w_off + W)
        with m.If(self.i_blk.valid & (blk.nxt.valid | blk.msg.valid)):
            m.d.sync += buf.eq((w_data & w_mask) | (buf & ~w_mask))

        # A message ending in this beat: bytes below ``off`` from the buffer, the rest
        # from the beat.
        here = from_byte(blk.msg.off)
        msg = self.o_msg.payload
        m.d.comb += [
            msg.bytes.as_value().eq((rotated(blk.msg.rot) & here) | (buf & ~here)),
            self.o_msg.valid.eq(self.i_blk.valid & blk.msg.valid & blk.msg.done),
            msg.type.eq(blk.msg.type),
            msg.index.eq(blk.msg.index),
        ]
        return m
