"""Stage 3: message assembler.

Collects the bytes of each ITCH message, whatever its alignment in the beats,
into a buffer indexed by message byte, and registers the whole message at the end
of the cycle of the beat holding its last byte: earlier bytes from the buffer, the
last ones straight from the beat.  Every select is a register (the splitter's, or the
assembler's own, set from them a beat ahead), so the beat's bytes go through one
rotation and one lane mask before the register.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import MESSAGE_BY_CODE, TICK_MAP

from .common import MAX_MSG_LEN
from .splitter import split_beat_layout

__all__ = ["MessageAssembler", "message_layout", "KIND_CODES", "kind_bits", "tick_byte_sources", "SOURCE_GROUPS",
           "sel_bits"]

#: The message types a tick is built for, in the order of ``message_layout().kind``.
KIND_CODES = tuple(TICK_MAP)


def kind_bits(type_byte: int) -> int:
    """``message_layout().kind`` for a type byte: one bit per :data:`KIND_CODES` entry, 0 if unknown."""
    code = chr(type_byte)
    return 1 << KIND_CODES.index(code) if code in KIND_CODES else 0


def tick_byte_sources(code: str) -> dict[int, int]:
    """``{tick byte: message byte}`` of the copies of ``TICK_MAP[code]``."""
    out = {}
    for c in TICK_MAP[code]:
        for k in range(c.size):
            out[c.dst + k] = c.src + (c.size - 1 - k if c.kind == "be" else k)
    return out


def _source_groups() -> tuple[frozenset[str], ...]:
    groups = set()
    sources = {code: tick_byte_sources(code) for code in TICK_MAP}
    for dst in {d for src in sources.values() for d in src}:
        by_src: dict[int, set[str]] = {}
        for code, src in sources.items():
            if dst in src:
                by_src.setdefault(src[dst], set()).add(code)
        groups.update(frozenset(codes) for codes in by_src.values())
    return tuple(sorted(groups, key=lambda g: (len(g), sorted(g))))


#: Every set of message types that copies one message byte into one tick byte, in the
#: order of ``message_layout().sel``: the tick builder's selects.
SOURCE_GROUPS = _source_groups()


def sel_bits(type_byte: int) -> int:
    """``message_layout().sel`` for a type byte: bit ``g`` set when the type is in ``SOURCE_GROUPS[g]``."""
    code = chr(type_byte)
    return sum(1 << g for g, codes in enumerate(SOURCE_GROUPS) if code in codes)


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
    sel : len(SOURCE_GROUPS)
        The builder's selects (:func:`sel_bits`): whether the type is one of a group of
        types that copy the same message byte into a tick byte, decoded a cycle
        ahead so that each tick byte is one AND-OR of message bytes.
    """
    return data.StructLayout({
        "bytes": data.ArrayLayout(unsigned(8), MAX_MSG_LEN),
        "type": unsigned(8),
        "index": unsigned(16),
        "kind": unsigned(len(KIND_CODES)),
        "sel": unsigned(len(SOURCE_GROUPS)),
    })


class MessageAssembler(wiring.Component):
    """Assemble message bodies described by the splitter's slots.

    Each beat writes the bytes of one message into the buffer: the message starting
    in this beat (``nxt``, which must describe every body that begins in a beat, as
    the splitter's does) if any, else the one continuing (``msg``).  The beat is
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
        blk = self.i_blk.payload
        # Buffer words: bytes k*W .. of the message (the last one only as long as needed).
        sizes = [min(W, N - k * W) for k in range(-(-N // W))]

        def rotated(sel, name):
            """The beat rotated so that lane ``j`` holds message byte ``j`` (mod W): a barrel
            shifter, selected by the rotation's one-hot code (an AND-OR of registers; a
            binary select put a decoder and its fan-out before it)."""
            r = Signal(8 * W, name=name)
            m.d.comb += r.eq(reduce(operator.or_, [Mux(sel[k], blk.data.rotate_right(8 * k), 0) for k in range(W)]))
            return r

        buf = [Signal(8 * n, name=f"buf{k}") for k, n in enumerate(sizes)]
        NW = len(buf)
        valid = self.i_blk.valid
        use_nxt = blk.nxt.valid

        # Where the continuing message's bytes fall, decoded a beat ahead: the
        # assembler follows ``msg.off`` itself (a body that begins in a beat continues
        # at offset W - rot in the next one, then W more every beat), as a one-hot of
        # the word it is in (``weq``), a thermometer of the words below it (``wgt``)
        # and the lanes below it (``below``).  From their next values it registers a
        # byte mask for each use: ``wr_cont`` (the continuing message's bytes of the
        # next beat: lanes from off mod W up in the offset's word, the lanes below it
        # in the word after) and ``rd_buf`` (bytes read from the buffer rather than the
        # beat: words below the offset's, and its lanes below off mod W).  A buffer
        # byte is then written under one enable and read through one 2:1 multiplexer,
        # both driven by a register of its own.
        weq = Signal(NW + 1)      # bit k: off // W == k
        wgt = Signal(NW)          # bit k: off // W > k
        below = Signal(W)         # lanes below off mod W
        # (the masks of a beginning body come from its ``fit`` lanes, and the rotations
        # from the slots' ``sel``: registers of the splitter's, no decoder of ``rot``)
        fit = blk.nxt.fit
        at0 = fit[W - 1]                        # rot == 0: the body fills the beat
        weq_n, wgt_n, below_n = Signal.like(weq), Signal.like(wgt), Signal.like(below)
        m.d.comb += [
            weq_n.eq(Mux(use_nxt, Mux(at0, 0b10, 0b01), weq << 1)),
            wgt_n.eq(Mux(use_nxt, at0, (wgt << 1) | 1)),
            # lanes below (W - rot) mod W
            below_n.eq(Mux(use_nxt, Mux(at0, 0, fit), below)),
        ]
        wr_cont = [Signal(n, name=f"wr_cont{k}") for k, n in enumerate(sizes)]
        rd_buf = [Signal(n, name=f"rd_buf{k}") for k, n in enumerate(sizes)]
        with m.If(valid):
            m.d.sync += [weq.eq(weq_n), wgt.eq(wgt_n), below.eq(below_n)]
            for k, n in enumerate(sizes):
                for j in range(n):
                    m.d.sync += [
                        wr_cont[k][j].eq(Mux(below_n[j], weq_n[k - 1] if k else 0, weq_n[k])),
                        rd_buf[k][j].eq(wgt_n[k] | (weq_n[k] & below_n[j])),
                    ]

        # Each beat writes the bytes of one message: the one beginning here if any,
        # else the one continuing.  A beginning body's W bytes go to message offsets
        # -rot .. W-1-rot: word 0's lanes below W - rot.
        # (each slot's rotation is its own shifter: selecting the rotation first put
        # a LUT and a long route before the shifter's select lines)
        # The continuing message's rotation is the assembler's own register, set from the
        # beat where the body began (``nxt.sel``): the splitter's copy sat between the two
        # stages, a long route before the 64 AND-ORs it selects.  (It is 0 after a frame's
        # first beat, where no body continues: a different flip-flop from the splitter's,
        # which synthesis would otherwise merge with it.)
        msel = Signal(W)
        with m.If(valid & blk.first):
            m.d.sync += msel.eq(0)
        with m.Elif(valid & use_nxt):
            m.d.sync += msel.eq(blk.nxt.sel)
        r_data = rotated(msel, "r_data")
        w_data = Signal(8 * W, name="w_data")
        m.d.comb += w_data.eq(Mux(use_nxt, rotated(blk.nxt.sel, "n_data"), r_data))
        for k, b in enumerate(buf):
            for j in range(sizes[k]):
                en = Signal(name=f"wr_en{k}_{j}")
                # (lane 0 is always written: no comparison with a constant result)
                first = (1 if j == 0 else fit[j]) if k == 0 else 0
                m.d.comb += en.eq(valid & Mux(use_nxt, first, blk.msg.valid & wr_cont[k][j]))
                # Words past the first are written by the continuing message only (a
                # beginning body reaches word 0 alone): its rotation, without the
                # multiplexer after it.
                data = w_data if k == 0 else r_data
                with m.If(en):
                    m.d.sync += b[8 * j:8 * j + 8].eq(data[8 * j:8 * j + 8])

        # A message ending in this beat: bytes below ``off`` from the buffer, the rest
        # from the beat.
        words = []
        for k, b in enumerate(buf):
            words += [Mux(rd_buf[k][j], b[8 * j:8 * j + 8], r_data[8 * j:8 * j + 8]) for j in range(sizes[k])]
        msg = self.o_msg.payload
        is_type = {code: blk.msg.type == MESSAGE_BY_CODE[code].type_byte for code in KIND_CODES}
        m.d.sync += [
            msg.bytes.as_value().eq(Cat(*words)),
            self.o_msg.valid.eq(self.i_blk.valid & blk.msg.valid & blk.msg.done),
            msg.type.eq(blk.msg.type),
            msg.index.eq(blk.msg.index),
            msg.kind.eq(Cat(*is_type.values())),
            msg.sel.eq(Cat(*[Cat(*[is_type[c] for c in sorted(codes)]).any() for codes in SOURCE_GROUPS])),
        ]
        return m
