"""The generator's random stream: splitmix64 in numba kernels, state in a 1-element array.

Each stage of :mod:`.gen` (the market model, packing, losses and capture order) draws
from its own stream, seeded from the configuration's seed, so that changing one
stage's parameters leaves the others' draws alone.

numba caches each kernel by its own file: a change here is not seen by the cached
kernels of :mod:`.gen_market` and :mod:`.gen_packets` that call these (clear their
``__pycache__`` after changing this file).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types as nt

__all__ = ["I64", "U64", "F64", "VOID", "RS", "U8A", "I64A", "F64A", "u01", "randint", "geom", "expo"]

# Helpers called from other kernels are compiled for one explicit signature (these
# types; the market model's kernels use them too): numba would otherwise compile a
# new specialization for every distinct literal argument (a global constant is a
# literal), which made the first run take minutes.  With a signature, literal
# arguments simply convert.
I64, U64, F64, VOID = nt.int64, nt.uint64, nt.float64, nt.void
RS = nt.uint64[::1]          # the random state
U8A, I64A, F64A = nt.uint8[::1], nt.int64[::1], nt.float64[::1]

# The kernels draw from their own splitmix64 stream, state in a 1-element array:
# numba's np.random goes through thread-local state on every call, which made it
# most of the generator's time; this one is a few instructions, and its stream does
# not depend on the numba or numpy version (the log-based draws rest on libm).
_SM_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SM_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_SM_MUL2 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 1.0 / 9007199254740992.0


@numba.njit(U64(RS), cache=True)
def _next(rs):
    z = rs[0] + _SM_GAMMA
    rs[0] = z
    z = (z ^ (z >> np.uint64(30))) * _SM_MUL1
    z = (z ^ (z >> np.uint64(27))) * _SM_MUL2
    return z ^ (z >> np.uint64(31))


@numba.njit(F64(RS), cache=True)
def u01(rs):
    """Uniform in [0, 1), 53 random bits."""
    return np.float64(_next(rs) >> np.uint64(11)) * _TWO_M53


@numba.njit(I64(RS, I64, I64), cache=True)
def randint(rs, lo, hi):
    """Uniform integer in [lo, hi)."""
    return lo + np.int64(u01(rs) * (hi - lo))


@numba.njit(I64(RS, F64), cache=True)
def geom(rs, p):
    """Trials up to the first success (>= 1), by inversion: one draw, no data-dependent loop."""
    return 1 + np.int64(np.log(1.0 - u01(rs)) / np.log(1.0 - p))


@numba.njit(F64(RS, F64), cache=True)
def expo(rs, mean):
    return -mean * np.log(1.0 - u01(rs))
