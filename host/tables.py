"""Ticks and BBO rows as research tables: Arrow, Parquet, pandas and polars.

Research happens in DataFrames.  These converters resolve symbols (through a
:class:`~wiretick.host.symbols.SymbolDirectory`, learnt from the ticks when not
given) and turn Price(4) integers into prices:

- ``prices="decimal"`` (Parquet's default): exact ``decimal128(10, 4)``, built from
  the integers without arithmetic;
- ``prices="float"`` (the DataFrames' default): dollars as float64 (every Price(4)
  is exact in a double);
- ``prices="int"``: the Price(4) integers as they are.

pyarrow, pandas and polars are imported only when a function needs them (the
``research`` extra installs them).

In a tick table ``price`` is a price only for the types that carry one (A F C U
P Q, and J K I O's first price); ``price_raw`` keeps the field as it is for the
others (see docs/tick.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import WiretickError
from .tick import TICK_DTYPE

__all__ = ["to_arrow", "to_pandas", "to_polars", "write_parquet", "write_table", "check_output", "directory_of",
           "decode_to_parquet", "OutputError"]

PRICE_TYPE = (10, 4)


class OutputError(WiretickError):
    """An output file this library cannot write (an unknown format, a missing optional package)."""


def _pa():
    try:
        import pyarrow as pa
    except ImportError:                                  # pragma: no cover - the research extra installs it
        raise OutputError("Parquet and DataFrames need pyarrow: pip install 'wiretick[research]'") from None
    return pa


def directory_of(ticks: np.ndarray):
    """A symbol directory learnt from ``ticks`` (their R messages, and names in other messages)."""
    from .book import Books
    from .select import select
    books = Books()
    books.update(select(ticks, types="RHYLKJhNO"))
    return books.symbols


def _price(pa, values: np.ndarray, prices: str):
    values = np.asarray(values, np.uint32)
    if prices == "int":
        return pa.array(values)
    if prices == "float":
        return pa.array(values / 10_000.0)
    if prices == "decimal":
        # decimal128 is a 16-byte little-endian two's-complement unscaled integer per value
        raw = np.zeros((len(values), 2), np.uint64)
        raw[:, 0] = values
        return pa.Array.from_buffers(pa.decimal128(*PRICE_TYPE), len(values), [None, pa.py_buffer(raw)])
    raise ValueError(f"prices must be 'decimal', 'float' or 'int', got {prices!r}")


def _dictionary(pa, keys: np.ndarray, text):
    """A dictionary-encoded string column from integer keys: one string per distinct key, not per row."""
    uniq, inv = np.unique(np.asarray(keys), return_inverse=True)
    return pa.DictionaryArray.from_arrays(pa.array(inv.astype(np.int32).reshape(-1)),
                                          pa.array([text(int(u)) for u in uniq], pa.string()))


def _symbols(pa, locates: np.ndarray, directory):
    return _dictionary(pa, locates, lambda loc: directory.symbol(loc) or "")


def _chars(pa, codes: np.ndarray):
    return _dictionary(pa, codes, lambda c: chr(c) if c else "")


def to_arrow(rows: np.ndarray, *, directory=None, prices: str = "decimal"):
    """A ``pyarrow.Table`` of ticks, BBO rows (:data:`~wiretick.host.book.BBO_DTYPE`) or trade prints."""
    from .book import BBO_DTYPE, TRADE_DTYPE

    pa = _pa()
    if directory is None and rows.dtype == TICK_DTYPE:
        directory = directory_of(rows)
    if directory is None:
        from .symbols import SymbolDirectory
        directory = SymbolDirectory()
    cols: dict[str, object] = {}
    if rows.dtype == TICK_DTYPE:
        for name in ("seq", "ts_rx", "feed_seq", "ts_exch"):
            cols[name] = pa.array(rows[name])
        cols["msg_type"] = _chars(pa, rows["msg_type"])
        cols["locate"] = pa.array(rows["locate"])
        cols["symbol"] = _symbols(pa, rows["locate"], directory)
        cols["side"] = _chars(pa, rows["side"])
        cols["price"] = _price(pa, rows["price"], prices)
        for name in ("shares", "order_ref", "ref2", "tracking", "flags", "price"):
            cols[name if name != "price" else "price_raw"] = pa.array(rows[name])
    elif rows.dtype == BBO_DTYPE:
        for name in ("ts_exch", "feed_seq", "seq", "locate"):
            cols[name] = pa.array(rows[name])
        cols["symbol"] = _symbols(pa, rows["locate"], directory)
        for side in ("bid", "ask"):
            cols[f"{side}_px"] = _price(pa, rows[f"{side}_px"], prices)
            cols[f"{side}_sz"] = pa.array(rows[f"{side}_sz"])
            cols[f"{side}_ct"] = pa.array(rows[f"{side}_ct"])
    elif rows.dtype == TRADE_DTYPE:
        for name in ("ts_exch", "feed_seq", "seq", "locate"):
            cols[name] = pa.array(rows[name])
        cols["symbol"] = _symbols(pa, rows["locate"], directory)
        cols["kind"] = _chars(pa, rows["kind"])
        cols["price"] = _price(pa, rows["price"], prices)
        for name in ("shares", "order_ref", "match"):
            cols[name] = pa.array(rows[name])
        cols["side"] = _chars(pa, rows["side"])
        cols["printable"] = pa.array(rows["printable"])
    else:
        raise ValueError(f"not ticks, BBO rows or trade prints: {rows.dtype}")
    return pa.table(cols)


def to_pandas(rows: np.ndarray, *, directory=None, prices: str = "float"):
    """A pandas DataFrame of ticks, BBO rows or trade prints (prices in dollars by default)."""
    return to_arrow(rows, directory=directory, prices=prices).to_pandas()


def to_polars(rows: np.ndarray, *, directory=None, prices: str = "float"):
    """A polars DataFrame of ticks, BBO rows or trade prints (prices in dollars by default)."""
    try:
        import polars as pl
    except ImportError:                                  # pragma: no cover
        raise OutputError("DataFrames need polars: pip install 'wiretick[research]'") from None
    return pl.from_arrow(to_arrow(rows, directory=directory, prices=prices))


def write_parquet(rows: np.ndarray, path: str | os.PathLike, *, directory=None, prices: str = "decimal") -> None:
    """Write ticks, BBO rows or trade prints as Parquet (symbols resolved, prices decimal), atomically."""
    import pyarrow.parquet as pq

    table = to_arrow(rows, directory=directory, prices=prices)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_output(path: str | os.PathLike) -> Path:
    """Refuse an output path before any work: a format other than .npy/.parquet, a directory that does
    not exist, or Parquet without pyarrow."""
    path = Path(path)
    if path.suffix not in (".npy", ".parquet"):
        raise OutputError(f"{path}: write .npy or .parquet")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: directory {path.parent} does not exist")
    if path.suffix == ".parquet":
        _pa()
    return path


def write_table(rows: np.ndarray, path: str | os.PathLike, *, directory=None) -> None:
    """Write ``rows`` as ``.npy`` or ``.parquet`` by the file name, atomically (nothing partial is left)."""
    path = Path(path)
    if path.suffix == ".parquet":
        write_parquet(rows, path, directory=directory)
    elif path.suffix == ".npy":
        tmp = path.with_name(f".{path.name}.part.npy")
        try:
            np.save(tmp, rows)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        raise OutputError(f"{path}: write .npy or .parquet")


def decode_to_parquet(capture: str | os.PathLike, path: str | os.PathLike, config=None):
    """``wiretick decode CAPTURE -o ticks.parquet``: decode, resolve symbols, write Parquet; returns the DecodeResult."""
    from .decode import decode_file
    check_output(path)
    res = decode_file(capture, config=config)
    write_parquet(res.ticks, path)
    return res
