#!/usr/bin/env python3
"""Writes the PDF fixtures for the document-command tests (Tests/Fixtures/documents/).

No PDF library is needed: the files are written in raw PDF syntax (one page, the standard
Helvetica font, a correct cross-reference table), so the fixtures are small and reproducible.
Run once; the outputs are committed:

    python3 scripts/make-document-fixtures.py
"""
import hashlib
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "documents")


def escape(s):
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


# The padding string of the PDF standard security handler (PDF 1.7, 7.6.3.3).
PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def rc4(key, data):
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for b in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(b ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def padded(password):
    return (password + PAD)[:32]


def pdf(lines, user_password=None):
    """A one-page PDF showing `lines` of text, top to bottom; with `user_password`, encrypted
    with the standard security handler, revision 2 (40-bit RC4), so it needs that password."""
    text = ["BT", "/F1 12 Tf", "16 TL", "72 720 Td"]
    for line in lines:
        text.append("(%s) Tj T*" % escape(line))
    text.append("ET")
    stream = "\n".join(text).encode("latin-1")
    file_id = hashlib.md5(b"steward document fixture").digest()
    encrypt = None
    if user_password is not None:
        permissions = -44  # print/copy bits as most tools write them; any value works here
        owner_key = hashlib.md5(padded(b"owner")).digest()[:5]
        o_entry = rc4(owner_key, padded(user_password))
        key = hashlib.md5(padded(user_password) + o_entry + permissions.to_bytes(4, "little", signed=True)
                          + file_id).digest()[:5]
        u_entry = rc4(key, PAD)
        # Object 4 (the content stream) is encrypted with its object key.
        stream = rc4(hashlib.md5(key + (4).to_bytes(3, "little") + (0).to_bytes(2, "little")).digest()[:10], stream)
        encrypt = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (
            o_entry.hex().encode(), u_entry.hex().encode(), permissions)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    if encrypt:
        objects.append(encrypt)
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
    extra = b" /Encrypt %d 0 R" % len(objects) if encrypt else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R /ID [<%s> <%s>]%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, file_id.hex().encode(), file_id.hex().encode(), extra, xref)
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
    # Encrypted with a user password: cannot be read without it.
    with open(os.path.join(OUT, "broken", "encrypted.pdf"), "wb") as f:
        f.write(pdf(REPORT, user_password=b"secret"))


if __name__ == "__main__":
    main()
