#!/usr/bin/env python3
"""Writes the PDF fixtures for the document-command tests (Tests/Fixtures/documents/).

No PDF library is needed: the files are written in raw PDF syntax (one page, the standard
Helvetica font, a correct cross-reference table), so the fixtures are small and reproducible.
Run once; the outputs are committed:

    python3 scripts/make-document-fixtures.py
"""
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "documents")


def escape(s):
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(lines):
    """A one-page PDF showing `lines` of text, top to bottom."""
    text = ["BT", "/F1 12 Tf", "16 TL", "72 720 Td"]
    for line in lines:
        text.append("(%s) Tj T*" % escape(line))
    text.append("ET")
    stream = "\n".join(text).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


REPORT = [
    "Solar Panel Efficiency Study",
    "",
    "Published in 2021 by the Northfield Energy Laboratory.",
    "",
    "Researchers measured the efficiency of forty rooftop solar panels over",
    "twelve months. Panels cleaned every month produced eleven percent more",
    "electricity than panels that were never cleaned. The study concludes",
    "that regular cleaning is a cheap way to improve solar energy output.",
]


def main():
    os.makedirs(os.path.join(OUT, "small"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "broken"), exist_ok=True)
    with open(os.path.join(OUT, "small", "report.pdf"), "wb") as f:
        f.write(pdf(REPORT))
    # Damaged: a PDF header, then the file breaks off in the middle of an object, with no
    # cross-reference table or trailer (what a partial download looks like).
    whole = pdf(REPORT)
    with open(os.path.join(OUT, "broken", "truncated.pdf"), "wb") as f:
        f.write(whole[: len(whole) // 3])


if __name__ == "__main__":
    main()
