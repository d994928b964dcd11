"""One reader for tables of interactions and items: CSV/TSV (separator sniffed), Parquet, RecBole atomic files.

The ``files`` recipe reads a domain's files with it and ``xdplug update`` reads
new interactions and item tables with it, so a file that works for one works
for the other and fails with the same message.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .raw import read_atomic

#: separators by file suffix; other suffixes are sniffed from the header line
SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET = (".parquet", ".pq")
ATOMIC = (".inter", ".item")


def sniff_separator(file: Path) -> str | None:
    """The separator of a delimited file: by its suffix, else sniffed from its first line (None: unknown)."""
    if file.suffix.lower() in SEPARATORS:
        return SEPARATORS[file.suffix.lower()]
    with file.open(encoding="utf-8", errors="replace") as handle:
        line = handle.readline()
    try:
        return csv.Sniffer().sniff(line, delimiters=",\t;|").delimiter
    except csv.Error:
        return None


def read_table(file: Path, what: str = "the file", sep: str | None = None, strip_columns: bool = False) -> pd.DataFrame:
    """Read ``file`` with every text column as strings; a problem is a :class:`DataError` naming the file.

    ``sep`` overrides the separator of a delimited file (default: :func:`sniff_separator`, ``,``
    when it cannot tell). Parquet columns keep their types (text as ``str``). ``strip_columns``
    strips spaces around the column names of a delimited file.
    """
    file = Path(file)
    if not file.is_file():
        raise DataError("file not found", str(file))
    if file.suffix in ATOMIC:
        return read_atomic(file)
    if file.suffix.lower() in PARQUET:
        try:
            df = pd.read_parquet(file)
        except ImportError:
            pin = "pyarrow" if int(np.__version__.split(".")[0]) >= 2 else \
                f"'pyarrow<19': later ones need numpy 2, this environment has numpy {np.__version__}"
            raise DataError(f"reading Parquet needs pyarrow (pip install {pin}) or fastparquet; "
                            "or give the table as CSV/TSV", str(file)) from None
        except Exception as exc:  # noqa: BLE001 - pyarrow raises its own error types
            raise DataError(f"cannot read the Parquet file: {exc}", str(file)) from None
        return df.astype({c: str for c in df.columns if df[c].dtype == object})
    try:
        df = pd.read_csv(file, sep=sep or sniff_separator(file) or ",", dtype=str, keep_default_na=False,
                         na_values=[""])
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot read {what}: the file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}: "
                        f"{exc.reason}); save it as UTF-8", str(file)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read {what}: {str(exc).strip()}", str(file)) from None
    if strip_columns:
        df.columns = [str(c).strip() for c in df.columns]
    return df
