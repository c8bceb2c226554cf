"""Our own sample documents: a PDF writer, a short article of our own (CLUB_ROW), the
seed article's path in ../shared, and a library of two stories that both "soured"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[3] / "shared"


def _pdf_literal(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1") + b")"


def pdf_pages(pages: list[list[str]], title: str | None = None,
              author: str | None = None) -> bytes:
    """A minimal valid PDF, one page per item, each line of text on a line of its own
    (Helvetica), with an optional title and author in its Info dictionary."""
    first_page = 4  # objects 1-3: catalog, page tree, font; then page + content per page
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, lines in enumerate(pages):
        ops = [b"BT", b"/F1 11 Tf", b"14 TL", b"72 760 Td"]
        ops += [_pdf_literal(line) + b" Tj T*" for line in lines]
        stream = b"\n".join([*ops, b"ET"])
        objects += [
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % (first_page + 2 * i + 1),
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        ]
    info = b""
    if title:
        info += b"/Title " + _pdf_literal(title)
    if author:
        info += b" /Author " + _pdf_literal(author)
    trailer_info = b""
    if info:
        objects.append(b"<< " + info + b" >>")
        trailer_info = b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, trailer_info, xref)
    return bytes(out)


CLUB_ROW = (
    "Harbour Rovers and Castle United fall out over stadium\n\n"
    "Relations between Harbour Rovers and Castle United soured after the two clubs "
    "failed to agree on sharing the new Quayside stadium, chairman Albert Penhale said. "
    "The dispute began when Castle United demanded a larger share of ticket revenue, "
    "and talks collapsed on Friday.\n"
)


SEED_ARTICLE = SHARED / "corpora" / "seed" / "iran-azerbaijan-baku-meeting.txt"


def two_souring_stories(store: Any, settings: Any, folder: Path) -> None:
    """Into `store`: the seed article (outlet Seed Times) and the club row written in
    `folder`, two stories of souring relations (a question naming neither is asked back)."""
    from ingest.pipeline import ingest

    club = folder / "club.txt"
    club.write_text(CLUB_ROW, encoding="utf-8")
    assert ingest([str(SEED_ARTICLE)], store, settings, progress=False,
                  outlet="Seed Times").count("added") == 1
    assert ingest([str(club)], store, settings, progress=False).count("added") == 1
