"""Kernel logos drawn in code: a framework-coloured tile with a two-letter monogram and container ribs.

Drawn and encoded here (no Pillow, no zlib compression) so the PNG bytes are identical on every
machine: zlib builds (zlib vs zlib-ng) compress differently, so the image data goes into *stored*
deflate blocks, which have exactly one encoding.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

# 5x7 capitals; enough for any framework's monogram.
_FONT = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "##.##", "#...#"),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
}
_BLANK = ("#####",) * 7  # unknown characters still give a visible mark

# Each framework's own brand colour, so kernels are told apart at a glance in the launcher.
_STYLE = {
    "python": ("PY", (0x37, 0x76, 0xAB)),
    "pytorch": ("PT", (0xEE, 0x4C, 0x2C)),
    "tensorflow": ("TF", (0xFF, 0x6F, 0x00)),
    "jax": ("JX", (0x5A, 0x3F, 0xC0)),
}
SIZES = (32, 64)
_CLEAR, _TILE, _DARK, _INK = range(4)


def style(framework: str) -> tuple[str, tuple[int, int, int]]:
    """Monogram and colour; frameworks without a fixed style get a colour derived from their name."""
    if framework in _STYLE:
        return _STYLE[framework]
    digest = hashlib.sha256(framework.encode()).digest()
    letters = "".join(c for c in framework.upper() if c.isalpha())[:2] or "DY"
    return letters, (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)


def _pixels(size: int, letters: str) -> list[bytearray]:
    rows = [bytearray(size) for _ in range(size)]
    radius = size // 6
    for y in range(size):
        for x in range(size):
            # Rounded corners: skip pixels outside the quarter circles.
            cx = radius - x if x < radius else x - (size - 1 - radius) if x > size - 1 - radius else 0
            cy = radius - y if y < radius else y - (size - 1 - radius) if y > size - 1 - radius else 0
            if cx * cx + cy * cy <= radius * radius:
                rows[y][x] = _TILE
    # A darker band at the bottom with vertical ribs: a shipping container, i.e. "runs in a container".
    band_top = size - size // 4
    for y in range(band_top, size):
        for x in range(size):
            if rows[y][x] and (x * 8 // size) % 2 == 0:
                rows[y][x] = _DARK
    glyphs = [_FONT.get(c, _BLANK) for c in letters]
    scale = max(1, (size * 3 // 4) // (6 * len(glyphs) - 1))
    width = (6 * len(glyphs) - 1) * scale
    left = (size - width) // 2
    top = (band_top - 7 * scale) // 2
    for i, glyph in enumerate(glyphs):
        for gy, line in enumerate(glyph):
            for gx, cell in enumerate(line):
                if cell == "#":
                    for dy in range(scale):
                        for dx in range(scale):
                            rows[top + gy * scale + dy][left + (6 * i + gx) * scale + dx] = _INK
    return rows


def _stored_zlib(data: bytes) -> bytes:
    """zlib stream of uncompressed deflate blocks: one valid encoding, whatever the zlib build."""
    out = bytearray(b"\x78\x01")
    chunks = [data[i : i + 0xFFFF] for i in range(0, len(data), 0xFFFF)] or [b""]
    for n, chunk in enumerate(chunks):
        out += bytes([1 if n == len(chunks) - 1 else 0]) + struct.pack("<HH", len(chunk), 0xFFFF ^ len(chunk)) + chunk
    return bytes(out + struct.pack(">I", zlib.adler32(data)))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(framework: str, size: int) -> bytes:
    """A size×size palette PNG logo for the framework."""
    letters, (r, g, b) = style(framework)
    palette = bytes([0, 0, 0, r, g, b, r * 3 // 5, g * 3 // 5, b * 3 // 5, 255, 255, 255])
    raw = b"".join(b"\x00" + bytes(row) for row in _pixels(size, letters))  # filter type 0 on every row
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 3, 0, 0, 0)),
            _chunk(b"PLTE", palette),
            _chunk(b"tRNS", b"\x00"),  # palette entry 0 is transparent, the rest opaque
            _chunk(b"IDAT", _stored_zlib(raw)),
            _chunk(b"IEND", b""),
        ]
    )
