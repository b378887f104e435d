"""Tiny images written byte by byte, so header parsing is tested without an imaging library.

Each builder emits just enough of the format's structure for its size field to sit where a real
encoder puts it (layouts from the PNG, GIF89a, WebP container / VP8 / VP8L and JPEG (ITU T.81)
specifications); the pixel data is a stub.
"""

from __future__ import annotations

import base64
import struct
import zlib


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\x00")
    iend = b"IEND"
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat) - 4)
        + idat
        + struct.pack(">I", zlib.crc32(idat))
        + struct.pack(">I", 0)
        + iend
        + struct.pack(">I", zlib.crc32(iend))
    )


def gif(width: int, height: int) -> bytes:
    # Header, logical screen descriptor (no global colour table), trailer.
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b"\x3b"


def _riff(chunk_type: bytes, payload: bytes) -> bytes:
    chunk = chunk_type + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_lossy(width: int, height: int) -> bytes:
    # VP8 key frame: 3-byte frame tag, start code 9D 01 2A, 14-bit width and height.
    payload = b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8
    return _riff(b"VP8 ", payload)


def webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)  # alpha hint and version bits left 0
    return _riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8)


def webp_extended(width: int, height: int) -> bytes:
    payload = b"\x00" * 4 + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _riff(b"VP8X", payload)


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(width: int, height: int, *, exif_bytes: int = 0, fill_bytes: int = 0) -> bytes:
    """A baseline JPEG; ``exif_bytes`` of APP1 before the frame header push the size further in."""
    app0 = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    app1 = _segment(0xE1, b"Exif\x00\x00" + b"\x00" * exif_bytes) if exif_bytes else b""
    dqt = _segment(0xDB, b"\x00" + bytes(range(64)))
    components = b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    sof0 = _segment(0xC0, b"\x08" + struct.pack(">HH", height, width) + b"\x03" + components)
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return (
        b"\xff\xd8"
        + app0
        + app1
        + dqt
        + b"\xff" * fill_bytes
        + sof0
        + sos
        + b"\x00" * 16
        + b"\xff\xd9"
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
