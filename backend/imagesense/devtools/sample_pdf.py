"""Test PDFs made offline, with exactly known text: pages with a text layer (Helvetica, written as PDF
text) and scanned pages (an image of rendered text, no text layer). Used by the document tests and
`imagesense bench-documents`."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from imagesense.devtools.samples import render

A4 = (595, 842)  # points


@dataclass(frozen=True)
class SamplePage:
    lines: list[str]
    scanned: bool = False  # an image of the text, no text layer

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _text_stream(lines: list[str]) -> bytes:
    commands = ["BT", "/F1 16 Tf", "20 TL", f"72 {A4[1] - 90} Td"]
    for line in lines:
        commands += [f"({_escape(line)}) Tj", "T*"]
    commands.append("ET")
    return "\n".join(commands).encode("latin-1")


def _scan(lines: list[str]) -> bytes:
    image: Image.Image = render(lines, size=30, width=1240)
    page = Image.new("RGB", (1240, 1754), "white")  # A4 at 150 dpi
    page.paste(image, (0, 60))
    buffer = io.BytesIO()
    page.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def build_pdf(pages: list[SamplePage]) -> bytes:
    """A valid PDF (catalog, page tree, one content stream per page, a JPEG per scanned page)."""
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for page in pages:
        if page.scanned:
            jpeg = _scan(page.lines)
            objects.append(
                b"<< /Type /XObject /Subtype /Image /Width 1240 /Height 1754 /ColorSpace /DeviceRGB "
                b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n" % len(jpeg) + jpeg + b"\nendstream"
            )
            image_ref = len(objects)
            content = b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % A4
            resources = b"<< /XObject << /Im1 %d 0 R >> >>" % image_ref
        else:
            content = _text_stream(page.lines)
            resources = b"<< /Font << /F1 3 0 R >> >>"
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R /Resources %s >>"
            % (*A4, len(objects), resources)
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % kid for kid in kids), len(kids))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


MIXED = [
    SamplePage(["INVOICE No. 2026-1125", "Date: 25 November 2026", "Acme Tools Ltd, 12 Mill Road"]),
    SamplePage(["Scanned receipt", "Coffee 3.50", "Total 3.50"], scanned=True),
    SamplePage(["Item Qty Price", "Hammer 2 24.00", "Nails 100 5.50", "Total 53.50"]),
]
