"""Small, valid ICC v2 profiles built byte by byte (no profile files in the repository): Display P3 and Adobe RGB
as matrix/TRC profiles from their published primaries, grey profiles by their tone curve, and a CMYK press profile
with an 8-bit lookup table (``mft1``). littlecms reads them as it reads a camera's or Photoshop's."""

from __future__ import annotations

import struct

import numpy as np

D50 = (0.9642, 1.0, 0.8249)
D65_XY = (0.3127, 0.3290)
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_PRIMARIES = ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060))
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
NO_COPYRIGHT = b"text\0\0\0\0no copyright\0"


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def desc_tag(text: str) -> bytes:
    """A v2 textDescriptionType (ASCII only)."""
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8) + bytes(3) + bytes(67)


def gamma_curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def srgb_curve() -> bytes:
    """The sRGB tone curve as a parametric curve (type 3), as Apple's and Google's profiles store it."""
    params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in params)


def srgb_table_curve(n: int = 1024) -> bytes:
    """The sRGB tone curve as a table of ``n`` entries, as HP's ubiquitous sRGB IEC61966-2.1 profile stores it."""
    x = np.linspace(0, 1, n)
    y = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    return b"curv\0\0\0\0" + struct.pack(">I", n) + struct.pack(f">{n}H", *np.round(y * 65535).astype(int).tolist())


def profile(space: bytes, pcs: bytes, device_class: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2.1 profile: 128-byte header, tag table, tags (4-byte aligned)."""
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    header = struct.pack(">I4sI4s4s4s12s4s4sI4s4sQI", offset + len(body), b"lcms", 0x02100000, device_class, space,
                         pcs, bytes(12), b"acsp", b"APPL", 0, b"none", b"none", 0, 0) + b"".join(_s15(v) for v in D50)
    return header.ljust(128, b"\0") + struct.pack(">I", len(tags)) + table + body


def rgb_to_xyz(primaries: tuple[tuple[float, float], ...], white: tuple[float, float] = D65_XY) -> np.ndarray:
    """The 3x3 matrix of linear RGB to XYZ (white Y = 1) of an RGB space's primaries and white (xy)."""
    def xyz(x: float, y: float) -> np.ndarray:
        return np.array([x / y, 1.0, (1 - x - y) / y])
    p = np.stack([xyz(*c) for c in primaries], axis=1)
    return p * np.linalg.solve(p, xyz(*white))


def rgb_profile(primaries: tuple[tuple[float, float], ...], trc: bytes, name: str) -> bytes:
    """A matrix/TRC display profile (D65 white adapted to the PCS' D50 by Bradford, as ICC requires)."""
    w65 = rgb_to_xyz(primaries).sum(axis=1)
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ np.array(D50)) / (BRADFORD @ w65)) @ BRADFORD
    m = adapt @ rgb_to_xyz(primaries)
    return profile(b"RGB ", b"XYZ ", b"mntr", [
        (b"desc", desc_tag(name)), (b"wtpt", xyz_tag(*D50)),
        (b"rXYZ", xyz_tag(*m[:, 0])), (b"gXYZ", xyz_tag(*m[:, 1])), (b"bXYZ", xyz_tag(*m[:, 2])),
        (b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc), (b"cprt", NO_COPYRIGHT)])


def display_p3() -> bytes:
    """Apple's Display P3: P3 primaries, D65, the sRGB tone curve (every iPhone photo since the iPhone 7)."""
    return rgb_profile(P3_PRIMARIES, srgb_curve(), "Display P3")


def adobe_rgb() -> bytes:
    return rgb_profile(ADOBE_PRIMARIES, gamma_curve(563 / 256), "Adobe RGB (1998)")


def hp_srgb() -> bytes:
    """Like HP's sRGB IEC61966-2.1 (in most camera and Photoshop JPEGs): its colorants, its 1024-entry curve and
    its famous D65 media white point in a v2 profile."""
    return profile(b"RGB ", b"XYZ ", b"mntr", [
        (b"desc", desc_tag("sRGB IEC61966-2.1")), (b"wtpt", xyz_tag(0.9505, 1.0, 1.0891)),
        (b"rXYZ", xyz_tag(0.4361, 0.2225, 0.0139)), (b"gXYZ", xyz_tag(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz_tag(0.1431, 0.0606, 0.7141)), (b"rTRC", srgb_table_curve()), (b"gTRC", srgb_table_curve()),
        (b"bTRC", srgb_table_curve()), (b"cprt", NO_COPYRIGHT)])


def grey_profile(trc: bytes, name: str) -> bytes:
    return profile(b"GRAY", b"XYZ ", b"mntr", [(b"desc", desc_tag(name)), (b"wtpt", xyz_tag(*D50)),
                                               (b"kTRC", trc), (b"cprt", NO_COPYRIGHT)])


def press_cmyk() -> bytes:
    """A CMYK output profile whose A2B0 (CMYK to Lab, 2-point grid) has a press's paper and inks: cyan is L*55
    a*-37 b*-50, not RGB (0, 255, 255) as a naive conversion makes it."""
    inks = {"c": (55, -37, -50), "m": (48, 74, -3), "y": (89, -5, 93), "k": (16, 0, 0)}
    clut = b""
    for corner in np.ndindex(2, 2, 2, 2):  # C slowest, K fastest, as ICC orders a grid
        on = [ink for ink, v in zip("cmyk", corner) if v]
        if not on:
            lab = (95.0, 0.0, 3.0)  # the paper
        else:
            fade = 0.6 if len(on) > 1 else 1.0
            lab = (max(4, min(inks[n][0] for n in on) - 12 * (len(on) - 1)),
                   sum(inks[n][1] for n in on) / len(on) * fade, sum(inks[n][2] for n in on) / len(on) * fade)
        clut += bytes((round(lab[0] * 255 / 100), round(lab[1] + 128), round(lab[2] + 128)))
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ramp = bytes(range(256))
    lut = b"mft1\0\0\0\0" + bytes((4, 3, 2, 0)) + identity + ramp * 4 + clut + ramp * 3
    return profile(b"CMYK", b"Lab ", b"prtr", [(b"desc", desc_tag("Test press CMYK")), (b"wtpt", xyz_tag(*D50)),
                                               (b"A2B0", lut), (b"cprt", NO_COPYRIGHT)])
