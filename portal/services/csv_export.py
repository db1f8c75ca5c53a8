"""CSV for the console's 导出 links: UTF-8 with a BOM (Excel then reads the Chinese right), streamed
row by row, and no cell that a spreadsheet would run as a formula (CWE-1236)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

BOM = "\ufeff"
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str:
    """The cell as text; one a spreadsheet would evaluate gets a leading apostrophe (shown as typed)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def lines(header: Iterable[object], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """The BOM and header, then one CSV line per row (CRLF, as RFC 4180 says), each cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([neutralise(cell) for cell in cells])
        return buffer.getvalue()

    yield BOM + line(header)
    for row in rows:
        yield line(row)
