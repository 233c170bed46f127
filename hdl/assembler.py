"""Stage 3: message assembler.

Collects the bytes of each ITCH message, whatever its alignment in the beats,
into a buffer indexed by message byte, and registers the whole message at the end
of the cycle of the beat holding its last byte: earlier bytes from the buffer, the
last ones straight from the beat.  Every select comes from the splitter's registers,
so the beat's bytes go through one rotation and one lane mask before the register.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.formats import MESSAGE_BY_CODE, TICK_MAP

from .common import MAX_MSG_LEN
from .splitter import split_beat_layout

__all__ = ["MessageAssembler", "message_layout", "KIND_CODES", "kind_bits"]

#: The message types a tick is built for, in the order of ``message_layout().kind``.
KIND_CODES = tuple(TICK_MAP)


def kind_bits(type_byte: int) -> int:
    """``message_layout().kind`` for a type byte: one bit per :data:`KIND_CODES` entry, 0 if unknown."""
    code = chr(type_byte)
    return 1 << KIND_CODES.index(code) if code in KIND_CODES else 0


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
    kind : len(KIND_CODES)
        The type one-hot (:func:`kind_bits`), decoded a cycle ahead so that the tick
        builder only selects.
    """
    return data.StructLayout({
        "bytes": data.ArrayLayout(unsigned(8), MAX_MSG_LEN),
        "type": unsigned(8),
        "index": unsigned(16),
        "kind": unsigned(len(KIND_CODES)),
    })


class MessageAssembler(wiring.Component):
    """Assemble message bodies described by the splitter's slots.

    Each beat writes the bytes of one message into the buffer: the message starting
    in this beat (``nxt``) if any, else the one continuing (``msg``).  The beat is
    rotated by the message's alignment (a barrel shifter) and written under a byte
    mask.  A message that ends in this beat (``msg.done``) is read as buffer bytes
    below ``msg.off`` and rotated beat lanes from there on; the next message may
    overwrite the buffer at the same clock edge.

    The buffer is held as beat-wide words of message bytes (word ``k``: bytes
    ``k*width ..``).  Once rotated, lane ``i`` of the beat is byte ``i`` of every
    word, so a beat's ``width`` bytes at message offset ``off`` are the lanes from
    ``off mod width`` up of word ``floor(off / width)`` and the lanes below it of the
    next word: a write enables at most two words, under a lane mask decoded from
    ``off mod width``.  Reading is the same per word: whole words below the
    offset's word from the buffer, whole words above it from the beat, and the
    word holding the offset split by the same kind of lane mask.

    Parameters
    ----------
    width : int
        Datapath width in bytes (a power of two).

    Attributes
    ----------
    i_blk : In(stream.Signature(split_beat_layout(width), always_ready=True))
        Beats from :class:`~wiretick.hdl.splitter.BlockSplitter`.
    o_msg : Out(stream.Signature(message_layout(), always_ready=True))
        Complete messages, registered: valid in the cycle after their last beat (whose
        block checks :attr:`~wiretick.hdl.splitter.BlockSplitter.o_ok` confirms in that cycle).
    """

    def __init__(self, width: int = 8):
        if width < 1 or width & (width - 1):
            raise ValueError("width must be a power of two")
        self.width = width
        super().__init__({
            "i_blk": In(stream.Signature(split_beat_layout(width), always_ready=True)),
            "o_msg": Out(stream.Signature(message_layout(), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        N = MAX_MSG_LEN
        lane_bits = W.bit_length() - 1          # log2(W)
        blk = self.i_blk.payload
        # Buffer words: bytes k*W .. of the message (the last one only as long as needed).
        sizes = [min(W, N - k * W) for k in range(-(-N // W))]

        def rotated(rot, name):
            """The beat rotated so that lane ``j`` holds message byte ``j`` (mod W): a barrel shifter."""
            r = Signal(8 * W, name=name)
            with m.Switch(rot):
                for k in range(W):
                    with m.Case(k):
                        m.d.comb += r.eq(blk.data.rotate_right(8 * k))
            return r

        def lanes_below(s, name):
            """Mask of the byte lanes below ``s`` (0..W-1)."""
            mask = Signal(8 * W, name=name)
            with m.Switch(s):
                for k in range(W):
                    with m.Case(k):
                        m.d.comb += mask.eq((1 << 8 * k) - 1)
            return mask

        buf = [Signal(8 * n, name=f"buf{k}") for k, n in enumerate(sizes)]

        # Each beat writes the bytes of one message: the one starting here if any,
        # else the one continuing.  Its W bytes go to message offsets off .. off+W-1
        # (off may be negative: a message starting within the beat).
        use_nxt = blk.nxt.valid
        w_off = Signal(signed(8), name="w_off")
        m.d.comb += w_off.eq(Mux(use_nxt, blk.nxt.off, blk.msg.off))
        w_word = w_off >> lane_bits                          # floor(off / W)
        w_data = rotated(Mux(use_nxt, blk.nxt.rot, blk.msg.rot), "w_data")
        w_below = lanes_below(w_off[:lane_bits], "w_below")
        with m.If(self.i_blk.valid & (blk.nxt.valid | blk.msg.valid)):
            for k, b in enumerate(buf):
                n = len(b)
                with m.If(w_word == k):                      # lanes off mod W and up
                    m.d.sync += b.eq((w_data[:n] & ~w_below[:n]) | (b & w_below[:n]))
                with m.Elif(w_word == k - 1):                # the lanes below it, one word on
                    m.d.sync += b.eq((w_data[:n] & w_below[:n]) | (b & ~w_below[:n]))

        # A message ending in this beat: bytes below ``off`` from the buffer, the rest
        # from the beat.
        r_off = blk.msg.off
        r_word = r_off >> lane_bits
        r_data = rotated(blk.msg.rot, "r_data")
        r_below = lanes_below(r_off[:lane_bits], "r_below")
        words = []
        for k, b in enumerate(buf):
            n = len(b)
            words.append(Mux(r_word > k, b,
                             Mux(r_word == k, (b & r_below[:n]) | (r_data[:n] & ~r_below[:n]), r_data[:n])))
        msg = self.o_msg.payload
        m.d.sync += [
            msg.bytes.as_value().eq(Cat(*words)),
            self.o_msg.valid.eq(self.i_blk.valid & blk.msg.valid & blk.msg.done),
            msg.type.eq(blk.msg.type),
            msg.index.eq(blk.msg.index),
            msg.kind.eq(Cat(*[blk.msg.type == MESSAGE_BY_CODE[code].type_byte for code in KIND_CODES])),
        ]
        return m
