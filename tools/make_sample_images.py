#!/usr/bin/env python3
"""Generate the sample photos that the page bundles in content/ refer to.

Every photo is a small drawn scene (sky gradients, mountains, lava, a ball,
a stage, ...). The output is deterministic: each scene draws with a
random.Random seeded from the bundle path and file name, so running the
script again writes byte-identical files.

The table PHOTOS below maps a bundle path (relative to content/) to the
photos in it: (file name, scene, (width, height)). The file extension picks
the format: .jpg (JPEG, quality 70), .png, .webp or .gif.

Usage:
    .venv/bin/python tools/make_sample_images.py [--content DIR] [--check]

--check only verifies that every file in the table exists, and exits 1 if
one is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
SUPERSAMPLE = 2  # scenes are drawn at 2x and scaled down for smooth edges

# bundle path -> [(file name, scene, (width, height))]
PHOTOS: dict[str, list[tuple[str, str, tuple[int, int]]]] = {
    "innlent/eldgos-sundhnuksgigar": [
        ("gos.jpg", "eruption", (640, 427)),
        ("hraun-nott.jpg", "lava_night", (480, 320)),
        ("varnargardur.webp", "barrier", (480, 320)),
    ],
    "innlent/fjarlagafrumvarp-2025": [
        ("althingishusid.jpg", "parliament", (640, 427)),
    ],
    "innlent/ny-gestastofa-a-thingvollum": [
        ("gestastofa.jpg", "visitor_center", (640, 427)),
        ("almannagja.png", "rift_gorge", (400, 400)),
    ],
    "innlent/appelsinugul-vidvorun-vegna-storms": [
        ("ovedur.jpg", "storm", (480, 320)),
    ],
    "innlent/metfjoldi-ferdamanna-i-juli": [
        ("ferdamenn.jpg", "airport", (640, 427)),
    ],
    "innlent/thingvallavegur-starfshopur": [
        ("thingvallavegur.jpg", "road", (480, 320)),
    ],
    "innlent/kvikusofnun-undir-svartsengi": [
        ("svartsengi.jpg", "geothermal", (640, 427)),
    ],
    "erlent/nordur-korea-skaut-eldflaug": [
        ("eldflaug.jpg", "rocket", (480, 320)),
        ("stjornstod.jpg", "control_room", (480, 320)),
    ],
    "erlent/nordur-korea-njosnagervihnottur": [
        ("gervihnottur.gif", "satellite", (400, 400)),
    ],
    "erlent/etna-gys-enn": [
        ("etna.jpg", "volcano", (640, 427)),
    ],
    "ithrottir/island-vann-i-laugardal": [
        ("fognudur.jpg", "celebration", (640, 427)),
        ("mark.jpg", "goal", (480, 320)),
        ("laugardalsvollur.jpg", "stadium", (640, 427)),
    ],
    "ithrottir/vikingur-islandsmeistari": [
        ("meistarar.jpg", "trophy", (480, 320)),
    ],
    "ithrottir/metthatttaka-i-thingvallahlaupinu": [
        ("hlauparar.jpg", "runners", (480, 320)),
    ],
    "menning/thognin-i-hrisey-verdlaunud": [
        ("verdlaunahafi.jpg", "award", (400, 400)),
    ],
    "menning/bokamessa-i-horpu": [
        ("harpa.jpg", "harpa", (640, 427)),
        ("svid.jpg", "stage", (480, 320)),
        ("baekur.png", "books", (400, 400)),
        ("upplestur.jpg", "reading", (480, 320)),
    ],
    "menning/askan-frumsynd": [
        ("leiksvid.webp", "theater", (640, 427)),
    ],
    "menning/tonleikar-a-thingvollum": [
        ("tonleikar.jpg", "concert", (640, 427)),
        ("gestir.jpg", "crowd", (480, 320)),
    ],
    "menning/heimildarmynd-um-reykjanesskaga": [
        ("skjaskot.jpg", "tv_still", (640, 360)),
    ],
}


# --------------------------------------------------------------------------
# drawing helpers (all coordinates are in supersampled pixels)
# --------------------------------------------------------------------------

def lerp(a, b, t):
    return tuple(int(round(a[i] + (b[i] - a[i]) * t)) for i in range(len(a)))


def vgrad(d, box, top, bottom, mid=None):
    """Vertical gradient in box; optional (t, colour) stop in the middle."""
    x0, y0, x1, y1 = [int(v) for v in box]
    span = max(1, y1 - y0 - 1)
    for y in range(y0, y1):
        t = (y - y0) / span
        if mid is None:
            c = lerp(top, bottom, t)
        else:
            mt, mc = mid
            c = lerp(top, mc, t / mt) if t < mt else lerp(mc, bottom, (t - mt) / (1 - mt))
        d.line([(x0, y), (x1, y)], fill=c)


def ridge(rng, w, h, base, amp, n, color, d, smooth=2):
    """A mountain ridge polygon across the full width."""
    pts = [(0, h)]
    heights = [base - amp * rng.uniform(0.25, 1.0) for _ in range(n + 1)]
    for i in range(n * smooth + 1):
        x = i * w / (n * smooth)
        k = i / smooth
        j = int(k)
        f = k - j
        y1 = heights[min(j, n)]
        y2 = heights[min(j + 1, n)]
        y = y1 + (y2 - y1) * (0.5 - 0.5 * math.cos(math.pi * f))
        pts.append((x, y))
    pts.append((w, h))
    d.polygon(pts, fill=color)


def person(d, x, y, s, shirt, skin=(222, 184, 152), legs=(40, 40, 55),
           arms_up=False, hair=(60, 45, 35)):
    """A simple standing figure with feet at (x, y) and height s."""
    hw = s * 0.14
    d.line([(x - hw * 0.5, y - s * 0.42), (x - hw * 0.6, y)], fill=legs, width=max(2, int(s * 0.09)))
    d.line([(x + hw * 0.5, y - s * 0.42), (x + hw * 0.6, y)], fill=legs, width=max(2, int(s * 0.09)))
    d.rounded_rectangle([x - hw, y - s * 0.78, x + hw, y - s * 0.38], radius=hw * 0.5, fill=shirt)
    aw = max(2, int(s * 0.07))
    if arms_up:
        d.line([(x - hw, y - s * 0.72), (x - hw * 2.2, y - s * 1.02)], fill=shirt, width=aw)
        d.line([(x + hw, y - s * 0.72), (x + hw * 2.2, y - s * 1.02)], fill=shirt, width=aw)
    else:
        d.line([(x - hw, y - s * 0.74), (x - hw * 1.5, y - s * 0.45)], fill=shirt, width=aw)
        d.line([(x + hw, y - s * 0.74), (x + hw * 1.5, y - s * 0.45)], fill=shirt, width=aw)
    r = s * 0.11
    d.ellipse([x - r, y - s * 0.8 - 2 * r, x + r, y - s * 0.8], fill=skin)
    d.chord([x - r, y - s * 0.8 - 2 * r, x + r, y - s * 0.8 - r * 0.6], 180, 360, fill=hair)


def flag_is(d, x, y, fw):
    """Icelandic flag with its top-left corner at (x, y)."""
    fh = fw * 18 / 25
    u = fw / 25
    d.rectangle([x, y, x + fw, y + fh], fill=(2, 82, 156))
    d.rectangle([x + 7 * u, y, x + 11 * u, y + fh], fill=(255, 255, 255))
    d.rectangle([x, y + 7 * u, x + fw, y + 11 * u], fill=(255, 255, 255))
    d.rectangle([x + 8 * u, y, x + 10 * u, y + fh], fill=(220, 30, 53))
    d.rectangle([x, y + 8 * u, x + fw, y + 10 * u], fill=(220, 30, 53))


def puff(d, rng, cx, cy, r, color, n=9, spread=1.0):
    """A cloud of overlapping circles (smoke, steam, ash)."""
    for _ in range(n):
        dx = rng.uniform(-r, r) * spread
        dy = rng.uniform(-r, r) * 0.6 * spread
        rr = r * rng.uniform(0.5, 1.0)
        d.ellipse([cx + dx - rr, cy + dy - rr, cx + dx + rr, cy + dy + rr], fill=color)


def stars(d, rng, w, h, n, color=(230, 230, 245)):
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.choice((1, 1, 2))
        d.ellipse([x - r, y - r, x + r, y + r], fill=color)


def crowd(d, rng, box, n, size):
    x0, y0, x1, y1 = box
    palette = [(200, 40, 50), (30, 70, 150), (240, 240, 240), (40, 40, 40),
               (230, 180, 40), (60, 120, 70), (120, 80, 150)]
    for i in range(n):
        y = y0 + (y1 - y0) * (i / n)
        x = rng.uniform(x0, x1)
        s = size * (0.7 + 0.6 * (y - y0) / max(1, y1 - y0))
        d.ellipse([x - s * 0.45, y, x + s * 0.45, y + s * 1.3], fill=rng.choice(palette))
        d.ellipse([x - s * 0.3, y - s * 0.55, x + s * 0.3, y + s * 0.05], fill=(214, 176, 146))


def soften(img, box, radius):
    """Blur part of the picture, like an out-of-focus background."""
    box = tuple(int(v) for v in box)
    img.paste(img.crop(box).filter(ImageFilter.GaussianBlur(radius)), box[:2])


def ball(d, cx, cy, r):
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 250, 250), outline=(40, 40, 40), width=max(2, int(r * 0.06)))
    pent = [(cx + r * 0.38 * math.cos(a), cy + r * 0.38 * math.sin(a))
            for a in [math.radians(-90 + 72 * k) for k in range(5)]]
    d.polygon(pent, fill=(30, 30, 30))
    for k in range(5):
        a = math.radians(-90 + 72 * k)
        px, py = cx + r * 0.85 * math.cos(a), cy + r * 0.85 * math.sin(a)
        rr = r * 0.2
        d.ellipse([px - rr, py - rr, px + rr, py + rr], fill=(30, 30, 30))
        d.line([pent[k], (px, py)], fill=(40, 40, 40), width=max(1, int(r * 0.05)))


# --------------------------------------------------------------------------
# scenes
# --------------------------------------------------------------------------

def scene_eruption(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.62), (28, 30, 58), (236, 120, 60), mid=(0.6, (120, 60, 80)))
    ridge(rng, w, h, h * 0.56, h * 0.12, 6, (70, 50, 60), d)
    d.rectangle([0, h * 0.6, w, h], fill=(34, 30, 32))
    # smoke plume
    for i in range(7):
        puff(d, rng, w * (0.45 + 0.06 * i), h * (0.42 - 0.055 * i), h * (0.08 + 0.02 * i),
             lerp((110, 95, 100), (160, 150, 160), i / 7), n=6)
    # fissure and fountains
    fx0, fx1, fy = w * 0.22, w * 0.78, h * 0.62
    d.line([(fx0, fy), (fx1, fy - h * 0.03)], fill=(255, 200, 60), width=int(h * 0.02))
    for k in range(9):
        x = fx0 + (fx1 - fx0) * (k + 0.5) / 9
        y = fy - h * 0.03 * (k + 0.5) / 9
        fh = h * rng.uniform(0.06, 0.2)
        fw = w * rng.uniform(0.012, 0.025)
        d.polygon([(x - fw, y), (x + fw, y), (x + fw * 0.3, y - fh), (x - fw * 0.3, y - fh)], fill=(255, 150, 40))
        d.polygon([(x - fw * 0.5, y), (x + fw * 0.5, y), (x, y - fh * 0.8)], fill=(255, 230, 120))
    # lava flows: chains of widening blobs running down from the fissure
    for k in range(3):
        x = fx0 + (fx1 - fx0) * (0.2 + 0.3 * k + rng.uniform(-0.05, 0.05))
        y = fy
        r = w * 0.02
        while y < h + r:
            d.ellipse([x - r * 1.6, y - r * 0.6, x + r * 1.6, y + r * 0.6], fill=(225, 95, 30))
            y += r * 0.5
            x += w * rng.uniform(-0.012, 0.012) + (k - 1) * w * 0.01
            r *= 1.06
    for _ in range(40):
        x, y = rng.uniform(0, w), rng.uniform(fy + h * 0.05, h)
        if img.getpixel((int(x), int(y)))[0] > 200:
            d.ellipse([x - 8, y - 4, x + 8, y + 4], fill=(120, 50, 30))
    img2 = img.filter(ImageFilter.GaussianBlur(1))
    img.paste(img2)


def scene_lava_night(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.55), (8, 10, 24), (60, 30, 40))
    stars(d, rng, w, h * 0.35, 60)
    d.rectangle([0, h * 0.55, w, h], fill=(18, 16, 20))
    # glowing lava front
    pts = [(0, h * 0.62)]
    for i in range(21):
        pts.append((w * i / 20, h * (0.6 + 0.05 * math.sin(i * 1.3) + rng.uniform(-0.02, 0.02))))
    pts += [(w, h * 0.8), (0, h * 0.82)]
    d.polygon(pts, fill=(200, 70, 20))
    for i in range(40):
        x, y = rng.uniform(0, w), rng.uniform(h * 0.63, h * 0.78)
        r = rng.uniform(3, 10)
        d.ellipse([x - r * 2, y - r, x + r * 2, y + r], fill=(255, 170, 60))
    # barrier wall in the foreground
    d.polygon([(0, h), (0, h * 0.82), (w * 0.15, h * 0.78), (w * 0.85, h * 0.76), (w, h * 0.78), (w, h)],
              fill=(40, 36, 34))
    for i in range(6):
        x = w * (0.1 + 0.15 * i)
        d.ellipse([x - 3, h * 0.75 - 3, x + 3, h * 0.75 + 3], fill=(255, 240, 200))


def scene_barrier(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.5), (170, 180, 190), (215, 215, 210))
    ridge(rng, w, h, h * 0.48, h * 0.08, 5, (120, 120, 128), d)
    d.rectangle([0, h * 0.5, w, h], fill=(70, 64, 60))
    d.polygon([(0, h * 0.5), (w, h * 0.52), (w, h * 0.62), (0, h * 0.58)], fill=(45, 42, 44))
    # the embankment
    d.polygon([(0, h * 0.7), (w * 0.3, h * 0.6), (w, h * 0.62), (w, h * 0.78), (0, h * 0.88)], fill=(128, 112, 96))
    d.polygon([(0, h * 0.7), (w * 0.3, h * 0.6), (w, h * 0.62), (w, h * 0.65), (w * 0.3, h * 0.64), (0, h * 0.74)],
              fill=(150, 134, 116))
    # excavators
    for x, s in ((w * 0.3, 1.0), (w * 0.68, 0.8)):
        y = h * 0.62
        d.rectangle([x - 30 * s * SUPERSAMPLE, y - 18 * s * SUPERSAMPLE, x + 10 * s * SUPERSAMPLE, y],
                    fill=(235, 180, 30))
        d.rectangle([x - 34 * s * SUPERSAMPLE, y, x + 14 * s * SUPERSAMPLE, y + 8 * s * SUPERSAMPLE], fill=(40, 40, 40))
        d.line([(x + 10 * s * SUPERSAMPLE, y - 14 * s * SUPERSAMPLE), (x + 40 * s * SUPERSAMPLE, y - 38 * s * SUPERSAMPLE),
                (x + 55 * s * SUPERSAMPLE, y - 5 * s * SUPERSAMPLE)], fill=(235, 180, 30), width=int(5 * s * SUPERSAMPLE))


def scene_parliament(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h), (90, 150, 215), (200, 225, 240))
    d.rectangle([0, h * 0.82, w, h], fill=(110, 150, 80))
    bx0, bx1, by0, by1 = w * 0.18, w * 0.82, h * 0.34, h * 0.84
    d.rectangle([bx0, by0, bx1, by1], fill=(112, 110, 104))
    d.polygon([(bx0 - w * 0.01, by0), (bx1 + w * 0.01, by0), (bx1 - w * 0.03, by0 - h * 0.07),
               (bx0 + w * 0.03, by0 - h * 0.07)], fill=(70, 80, 78))
    for row in range(3):
        for col in range(9):
            x = bx0 + (bx1 - bx0) * (col + 0.3) / 9
            y = by0 + (by1 - by0) * (0.1 + 0.3 * row)
            d.rectangle([x, y, x + (bx1 - bx0) * 0.045, y + (by1 - by0) * 0.17], fill=(235, 232, 220))
            d.rectangle([x + 3, y + 3, x + (bx1 - bx0) * 0.045 - 3, y + (by1 - by0) * 0.17 - 3], fill=(60, 70, 85))
    d.rectangle([w * 0.47, by1 - (by1 - by0) * 0.3, w * 0.53, by1], fill=(80, 55, 40))
    d.line([(w * 0.5, by0 - h * 0.07), (w * 0.5, by0 - h * 0.25)], fill=(230, 230, 230), width=4)
    flag_is(d, w * 0.5, by0 - h * 0.25, w * 0.08)
    for x in (w * 0.08, w * 0.92):
        d.ellipse([x - w * 0.06, h * 0.55, x + w * 0.06, h * 0.78], fill=(60, 110, 60))
        d.rectangle([x - 4, h * 0.75, x + 4, h * 0.84], fill=(80, 60, 40))


def scene_visitor_center(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.6), (80, 140, 210), (190, 215, 235))
    ridge(rng, w, h, h * 0.5, h * 0.18, 5, (110, 120, 140), d)
    ridge(rng, w, h, h * 0.58, h * 0.08, 7, (90, 110, 80), d)
    d.rectangle([0, h * 0.66, w, h], fill=(110, 140, 80))
    # building with grass roof
    d.rectangle([w * 0.2, h * 0.55, w * 0.8, h * 0.75], fill=(200, 196, 186))
    d.polygon([(w * 0.17, h * 0.56), (w * 0.83, h * 0.56), (w * 0.78, h * 0.49), (w * 0.22, h * 0.49)], fill=(90, 130, 60))
    for i in range(8):
        x = w * (0.24 + i * 0.07)
        d.rectangle([x, h * 0.58, x + w * 0.05, h * 0.73], fill=(120, 160, 190))
    d.rectangle([0, h * 0.8, w, h * 0.84], fill=(90, 90, 92))
    for i in range(5):
        person(d, w * (0.15 + 0.17 * i + rng.uniform(-0.03, 0.03)), h * 0.92, h * 0.16,
               rng.choice([(200, 50, 40), (40, 80, 160), (240, 200, 40), (50, 120, 70)]))


def scene_rift_gorge(img, d, rng, w, h):
    d.rectangle([0, 0, w, h], fill=(150, 190, 230))
    d.polygon([(0, 0), (w * 0.38, 0), (w * 0.44, h * 0.6), (w * 0.36, h), (0, h)], fill=(58, 56, 60))
    d.polygon([(w * 0.62, 0), (w, 0), (w, h), (w * 0.66, h), (w * 0.58, h * 0.55)], fill=(72, 70, 74))
    for i in range(12):
        y = h * (0.05 + 0.08 * i)
        d.line([(0, y), (w * 0.4, y + h * 0.02)], fill=(40, 38, 42), width=3)
        d.line([(w * 0.62, y + h * 0.01), (w, y - h * 0.01)], fill=(52, 50, 56), width=3)
    d.polygon([(w * 0.44, h * 0.6), (w * 0.58, h * 0.55), (w * 0.66, h), (w * 0.36, h)], fill=(96, 130, 70))
    d.polygon([(w * 0.49, h * 0.6), (w * 0.53, h * 0.6), (w * 0.6, h), (w * 0.42, h)], fill=(170, 150, 120))
    for i in range(3):
        person(d, w * (0.48 + 0.03 * i), h * (0.72 + 0.09 * i), h * (0.07 + 0.03 * i),
               [(200, 60, 40), (40, 90, 170), (240, 190, 40)][i])


def scene_storm(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.55), (50, 55, 65), (110, 115, 125))
    for i in range(5):
        puff(d, rng, w * rng.uniform(0, 1), h * rng.uniform(0.05, 0.3), h * 0.12, (75, 80, 90), n=5)
    vgrad(d, (0, h * 0.55, w, h * 0.8), (60, 80, 90), (40, 55, 65))
    for i in range(30):
        x, y = rng.uniform(0, w), rng.uniform(h * 0.56, h * 0.78)
        d.arc([x - 20, y - 8, x + 20, y + 8], 180, 360, fill=(220, 230, 235), width=3)
    puff(d, rng, w * 0.35, h * 0.72, h * 0.1, (230, 235, 240), n=8, spread=1.5)
    d.polygon([(0, h * 0.78), (w, h * 0.74), (w, h), (0, h)], fill=(90, 88, 86))
    d.rectangle([0, h * 0.86, w, h], fill=(55, 55, 58))
    for i in range(4):
        x = w * (0.15 + 0.22 * i)
        d.line([(x, h * 0.86), (x, h * 0.62)], fill=(40, 40, 40), width=4)
        d.ellipse([x - 6, h * 0.61, x + 6, h * 0.64], fill=(250, 230, 160))
    rain = Image.new("RGBA", img.size, (0, 0, 0, 0))
    rd = ImageDraw.Draw(rain)
    for i in range(260):
        x, y = rng.uniform(-w * 0.2, w), rng.uniform(0, h)
        rd.line([(x, y), (x + 30, y + 22)], fill=(220, 225, 235, 110), width=2)
    img.paste(Image.alpha_composite(img.convert("RGBA"), rain).convert("RGB"))


def scene_airport(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.5), (120, 170, 220), (225, 235, 245))
    d.rectangle([0, h * 0.5, w, h], fill=(150, 150, 155))
    # plane
    px, py = w * 0.55, h * 0.22
    d.ellipse([px - w * 0.16, py - h * 0.025, px + w * 0.16, py + h * 0.025], fill=(245, 245, 248))
    d.polygon([(px - w * 0.02, py), (px + w * 0.04, py), (px - w * 0.05, py + h * 0.09), (px - w * 0.09, py + h * 0.09)],
              fill=(220, 222, 228))
    d.polygon([(px - w * 0.15, py), (px - w * 0.12, py), (px - w * 0.15, py - h * 0.07), (px - w * 0.17, py - h * 0.07)],
              fill=(30, 80, 150))
    # terminal
    d.rectangle([w * 0.05, h * 0.4, w * 0.95, h * 0.62], fill=(70, 90, 110))
    for i in range(18):
        x = w * (0.06 + i * 0.05)
        d.rectangle([x, h * 0.42, x + w * 0.04, h * 0.6], fill=(150, 190, 215))
    d.rectangle([w * 0.05, h * 0.37, w * 0.95, h * 0.4], fill=(220, 220, 220))
    for i in range(14):
        x = w * rng.uniform(0.05, 0.95)
        y = h * rng.uniform(0.75, 0.95)
        person(d, x, y, h * 0.18, rng.choice([(190, 40, 40), (40, 70, 140), (30, 30, 30), (230, 180, 40), (90, 140, 90)]))
        d.rounded_rectangle([x + h * 0.03, y - h * 0.07, x + h * 0.07, y], radius=3, fill=(50, 50, 60))


def scene_road(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.5), (150, 180, 210), (230, 225, 210))
    ridge(rng, w, h, h * 0.45, h * 0.14, 6, (95, 105, 125), d)
    d.rectangle([0, h * 0.48, w, h], fill=(120, 135, 80))
    d.polygon([(w * 0.6, h * 0.48), (w, h * 0.5), (w, h * 0.6), (w * 0.7, h * 0.54)], fill=(70, 110, 150))
    d.polygon([(w * 0.47, h * 0.5), (w * 0.5, h * 0.5), (w * 0.85, h), (w * 0.15, h)], fill=(70, 70, 72))
    for i in range(6):
        t0, t1 = i / 6, (i + 0.5) / 6
        y0, y1 = h * (0.5 + 0.5 * t0 ** 1.5), h * (0.5 + 0.5 * t1 ** 1.5)
        d.line([(w * 0.485, y0), (w * 0.485 + (w * 0.015) * t0, y1)], fill=(240, 210, 60), width=max(2, int(8 * t1)))
    d.rounded_rectangle([w * 0.44, h * 0.6, w * 0.5, h * 0.66], radius=4, fill=(180, 30, 30))
    d.rectangle([w * 0.15, h * 0.55, w * 0.16, h * 0.68], fill=(90, 90, 90))
    d.rectangle([w * 0.1, h * 0.52, w * 0.21, h * 0.58], fill=(30, 80, 160))


def scene_geothermal(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.55), (140, 165, 195), (215, 220, 225))
    ridge(rng, w, h, h * 0.5, h * 0.1, 5, (100, 100, 110), d)
    d.rectangle([0, h * 0.55, w, h], fill=(60, 62, 58))
    for i in range(80):
        x, y = rng.uniform(0, w), rng.uniform(h * 0.56, h)
        d.ellipse([x - 6, y - 3, x + 6, y + 3], fill=(85, 95, 75))
    d.polygon([(w * 0.55, h * 0.7), (w * 0.95, h * 0.68), (w * 0.9, h * 0.8), (w * 0.6, h * 0.8)], fill=(120, 200, 210))
    for x in (0.2, 0.35):
        d.rectangle([w * x, h * 0.42, w * (x + 0.1), h * 0.62], fill=(225, 225, 220))
        puff(d, rng, w * (x + 0.05), h * 0.28, h * 0.1, (245, 245, 245), n=10, spread=1.3)
        d.rectangle([w * (x + 0.03), h * 0.36, w * (x + 0.07), h * 0.42], fill=(200, 200, 200))
    for k in range(2):
        y = h * (0.66 + 0.05 * k)
        d.line([(0, y), (w * 0.5, y - h * 0.02)], fill=(170, 170, 175), width=8)
        for i in range(8):
            x = w * (0.03 + 0.06 * i)
            d.line([(x, y), (x, y + h * 0.03)], fill=(120, 120, 125), width=3)


def scene_rocket(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.8), (70, 110, 170), (240, 200, 160))
    d.rectangle([0, h * 0.8, w, h], fill=(80, 85, 70))
    for i in range(10):
        puff(d, rng, w * (0.2 + 0.06 * i), h * 0.8, h * 0.09, (220, 215, 205), n=5)
    rx, ry = w * 0.5, h * 0.5
    d.polygon([(rx - w * 0.025, ry + h * 0.2), (rx - w * 0.045, ry + h * 0.4), (rx + w * 0.045, ry + h * 0.4),
               (rx + w * 0.025, ry + h * 0.2)], fill=(255, 200, 80))
    d.polygon([(rx - w * 0.015, ry + h * 0.2), (rx + w * 0.015, ry + h * 0.2), (rx, ry + h * 0.34)], fill=(255, 250, 210))
    d.rectangle([rx - w * 0.025, ry - h * 0.25, rx + w * 0.025, ry + h * 0.2], fill=(235, 235, 230))
    d.polygon([(rx - w * 0.025, ry - h * 0.25), (rx + w * 0.025, ry - h * 0.25), (rx, ry - h * 0.36)], fill=(235, 235, 230))
    d.rectangle([rx - w * 0.025, ry - h * 0.05, rx + w * 0.025, ry - h * 0.02], fill=(30, 30, 30))
    d.polygon([(rx - w * 0.025, ry + h * 0.12), (rx - w * 0.05, ry + h * 0.2), (rx - w * 0.025, ry + h * 0.2)], fill=(30, 30, 30))
    d.polygon([(rx + w * 0.025, ry + h * 0.12), (rx + w * 0.05, ry + h * 0.2), (rx + w * 0.025, ry + h * 0.2)], fill=(30, 30, 30))


def scene_control_room(img, d, rng, w, h):
    d.rectangle([0, 0, w, h], fill=(28, 32, 40))
    for i in range(3):
        x0 = w * (0.05 + 0.31 * i)
        d.rectangle([x0, h * 0.1, x0 + w * 0.28, h * 0.45], fill=(15, 40, 60))
        pts = [(x0 + w * 0.28 * k / 12, h * (0.38 - 0.2 * rng.random())) for k in range(13)]
        d.line(pts, fill=(80, 220, 140), width=3)
        d.rectangle([x0, h * 0.1, x0 + w * 0.28, h * 0.14], fill=(150, 30, 30))
    d.rectangle([0, h * 0.62, w, h * 0.7], fill=(70, 60, 50))
    d.rectangle([0, h * 0.7, w, h], fill=(45, 40, 36))
    for i in range(5):
        person(d, w * (0.12 + 0.19 * i), h * 0.86, h * 0.5, (60, 70, 60) if i != 2 else (30, 30, 35),
               skin=(200, 165, 135), hair=(20, 20, 20))
    for i in range(6):
        x = w * (0.08 + 0.16 * i)
        d.rectangle([x, h * 0.56, x + w * 0.08, h * 0.62], fill=(120, 200, 230))


def scene_satellite(img, d, rng, w, h):
    d.rectangle([0, 0, w, h], fill=(4, 6, 18))
    stars(d, rng, w, h, 90)
    d.ellipse([-w * 0.5, h * 0.7, w * 1.5, h * 2.2], fill=(40, 90, 170))
    d.ellipse([w * 0.1, h * 0.78, w * 0.5, h * 0.95], fill=(70, 130, 70))
    d.ellipse([w * 0.6, h * 0.82, w * 0.95, h * 1.0], fill=(90, 140, 80))
    d.arc([-w * 0.5, h * 0.7, w * 1.5, h * 2.2], 180, 360, fill=(140, 190, 240), width=6)
    cx, cy = w * 0.5, h * 0.38
    d.rectangle([cx - w * 0.06, cy - h * 0.08, cx + w * 0.06, cy + h * 0.08], fill=(200, 170, 60))
    for side in (-1, 1):
        x0 = cx + side * w * 0.08
        x1 = cx + side * w * 0.34
        d.line([(cx + side * w * 0.06, cy), (x0, cy)], fill=(180, 180, 180), width=4)
        d.rectangle([min(x0, x1), cy - h * 0.05, max(x0, x1), cy + h * 0.05], fill=(40, 60, 130))
        for k in range(1, 6):
            x = x0 + (x1 - x0) * k / 6
            d.line([(x, cy - h * 0.05), (x, cy + h * 0.05)], fill=(120, 140, 200), width=2)
    d.ellipse([cx - w * 0.03, cy + h * 0.08, cx + w * 0.03, cy + h * 0.12], fill=(220, 220, 220))


def scene_volcano(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.7), (70, 130, 200), (200, 220, 235))
    for i in range(8):
        puff(d, rng, w * (0.5 + 0.07 * i), h * (0.2 - 0.02 * i), h * (0.08 + 0.02 * i),
             lerp((90, 85, 85), (150, 145, 145), i / 8), n=6)
    d.polygon([(0, h * 0.75), (w * 0.44, h * 0.3), (w * 0.52, h * 0.3), (w, h * 0.72), (w, h), (0, h)], fill=(95, 80, 70))
    d.polygon([(w * 0.4, h * 0.34), (w * 0.44, h * 0.3), (w * 0.52, h * 0.3), (w * 0.57, h * 0.35),
               (w * 0.52, h * 0.38), (w * 0.47, h * 0.36)], fill=(240, 240, 245))
    d.line([(w * 0.49, h * 0.31), (w * 0.46, h * 0.45), (w * 0.49, h * 0.55)], fill=(240, 110, 40), width=6)
    d.rectangle([0, h * 0.82, w, h], fill=(120, 140, 90))
    for i in range(22):
        x = w * (i / 22) + rng.uniform(-5, 5)
        bw = w * rng.uniform(0.025, 0.04)
        bh = h * rng.uniform(0.04, 0.08)
        d.rectangle([x, h * 0.86 - bh, x + bw, h * 0.86], fill=rng.choice([(230, 210, 170), (220, 190, 150), (240, 235, 220)]))
        d.polygon([(x - 2, h * 0.86 - bh), (x + bw + 2, h * 0.86 - bh), (x + bw / 2, h * 0.86 - bh - h * 0.025)],
                  fill=(180, 90, 60))


def scene_goal(img, d, rng, w, h):
    for i in range(10):
        d.rectangle([w * i / 10, 0, w * (i + 1) / 10, h], fill=(60, 140, 60) if i % 2 else (70, 155, 70))
    gx0, gx1, gy0, gy1 = w * 0.1, w * 0.9, h * 0.15, h * 0.8
    for i in range(25):
        x = gx0 + (gx1 - gx0) * i / 24
        d.line([(x, gy0), (x + (w * 0.5 - x) * 0.1, gy1)], fill=(225, 225, 225), width=2)
    for i in range(14):
        y = gy0 + (gy1 - gy0) * i / 13
        d.line([(gx0, y), (gx1, y)], fill=(225, 225, 225), width=2)
    d.rectangle([gx0 - 8, gy0 - 8, gx1 + 8, gy0 + 4], fill=(250, 250, 250))
    d.rectangle([gx0 - 8, gy0, gx0 + 4, gy1], fill=(250, 250, 250))
    d.rectangle([gx1 - 4, gy0, gx1 + 8, gy1], fill=(250, 250, 250))
    d.line([(0, gy1 + 10), (w, gy1 + 10)], fill=(245, 245, 245), width=6)
    ball(d, w * 0.68, h * 0.36, h * 0.1)


def scene_stadium(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.3), (40, 50, 90), (120, 140, 180))
    d.polygon([(0, h * 0.2), (w, h * 0.2), (w, h * 0.55), (0, h * 0.55)], fill=(60, 60, 70))
    crowd(d, rng, (0, h * 0.22, w, h * 0.5), 110, h * 0.045)
    soften(img, (0, h * 0.2, w, h * 0.55), 3)
    for i in range(8):
        d.rectangle([w * i / 8, h * 0.55, w * (i + 1) / 8, h], fill=(60, 140, 60) if i % 2 else (70, 155, 70))
    d.line([(w * 0.5, h * 0.55), (w * 0.5, h)], fill=(240, 240, 240), width=4)
    d.ellipse([w * 0.38, h * 0.68, w * 0.62, h * 0.88], outline=(240, 240, 240), width=4)
    for x in (w * 0.05, w * 0.95):
        d.line([(x, h * 0.2), (x, 0)], fill=(150, 150, 150), width=6)
        d.rectangle([x - w * 0.04, 0, x + w * 0.04, h * 0.06], fill=(250, 250, 220))
    for i in range(6):
        person(d, w * (0.2 + 0.12 * i), h * (0.75 + 0.03 * (i % 2)), h * 0.14,
               (30, 80, 170) if i % 2 else (220, 220, 220))


def scene_celebration(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.45), (50, 55, 70), (80, 85, 100))
    crowd(d, rng, (0, h * 0.05, w, h * 0.4), 80, h * 0.055)
    soften(img, (0, 0, w, h * 0.45), 4)
    d.rectangle([0, h * 0.45, w, h], fill=(70, 150, 70))
    for i in range(7):
        x = w * (0.12 + 0.125 * i)
        person(d, x, h * (0.92 - 0.03 * (i % 3)), h * 0.42, (30, 80, 170), legs=(250, 250, 250), arms_up=True)


def scene_trophy(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h), (20, 25, 50), (60, 40, 70))
    for i in range(160):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        c = rng.choice([(220, 40, 40), (240, 240, 240), (30, 90, 200), (250, 200, 40)])
        d.rectangle([x, y, x + 6, y + 10], fill=c)
    for i in range(6):
        person(d, w * (0.1 + 0.16 * i), h * 0.98, h * 0.6, (200, 30, 40) if i % 2 else (20, 20, 20),
               legs=(20, 20, 20), arms_up=True)
    cx, cy = w * 0.5, h * 0.25
    d.chord([cx - w * 0.07, cy - h * 0.12, cx + w * 0.07, cy + h * 0.12], 0, 180, fill=(230, 190, 60))
    d.rectangle([cx - w * 0.07, cy - h * 0.04, cx + w * 0.07, cy], fill=(230, 190, 60))
    d.rectangle([cx - w * 0.012, cy + h * 0.1, cx + w * 0.012, cy + h * 0.18], fill=(210, 170, 50))
    d.rectangle([cx - w * 0.05, cy + h * 0.18, cx + w * 0.05, cy + h * 0.23], fill=(120, 80, 40))
    d.arc([cx - w * 0.11, cy - h * 0.03, cx - w * 0.04, cy + h * 0.08], 90, 270, fill=(230, 190, 60), width=6)
    d.arc([cx + w * 0.04, cy - h * 0.03, cx + w * 0.11, cy + h * 0.08], 270, 90, fill=(230, 190, 60), width=6)


def scene_runners(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.45), (140, 180, 220), (230, 230, 220))
    ridge(rng, w, h, h * 0.42, h * 0.1, 6, (110, 115, 130), d)
    d.rectangle([0, h * 0.45, w, h], fill=(170, 120, 60))
    for i in range(60):
        x, y = rng.uniform(0, w), rng.uniform(h * 0.46, h)
        d.ellipse([x - 10, y - 5, x + 10, y + 5], fill=rng.choice([(190, 90, 40), (150, 110, 50), (200, 150, 60)]))
    d.polygon([(w * 0.55, h * 0.45), (w * 0.6, h * 0.45), (w * 0.95, h), (w * 0.3, h)], fill=(190, 175, 150))
    for i in range(9):
        t = i / 8
        x = w * (0.57 + (0.62 - 0.57) * t) + w * 0.12 * t * rng.uniform(-1, 1)
        y = h * (0.5 + 0.45 * t)
        person(d, x, y, h * (0.08 + 0.3 * t),
               rng.choice([(230, 60, 40), (40, 110, 200), (250, 210, 40), (60, 160, 90), (200, 60, 160)]))


def scene_award(img, d, rng, w, h):
    d.rectangle([0, 0, w, h], fill=(25, 20, 30))
    light = Image.new("RGBA", img.size, (0, 0, 0, 0))
    ld = ImageDraw.Draw(light)
    ld.polygon([(w * 0.45, 0), (w * 0.55, 0), (w * 0.8, h * 0.85), (w * 0.2, h * 0.85)], fill=(255, 240, 200, 60))
    img.paste(Image.alpha_composite(img.convert("RGBA"), light).convert("RGB"))
    d.rectangle([0, h * 0.82, w, h], fill=(90, 40, 40))
    d.rectangle([w * 0.62, h * 0.5, w * 0.8, h * 0.85], fill=(140, 110, 80))
    person(d, w * 0.46, h * 0.86, h * 0.55, (30, 30, 40), hair=(150, 110, 60))
    d.rectangle([w * 0.34, h * 0.42, w * 0.4, h * 0.5], fill=(230, 190, 70))
    for i in range(10):
        d.ellipse([w * (0.05 + 0.1 * i) - 12, h * 0.9, w * (0.05 + 0.1 * i) + 12, h], fill=(15, 12, 18))


def scene_harpa(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.7), (110, 150, 200), (220, 225, 230))
    ridge(rng, w, h, h * 0.45, h * 0.08, 4, (150, 160, 180), d)
    vgrad(d, (0, h * 0.7, w, h), (50, 80, 110), (30, 55, 80))
    d.polygon([(w * 0.15, h * 0.72), (w * 0.2, h * 0.3), (w * 0.5, h * 0.18), (w * 0.85, h * 0.32), (w * 0.9, h * 0.72)],
              fill=(60, 70, 80))
    cols = [(120, 170, 190), (90, 140, 170), (170, 200, 200), (200, 180, 120), (110, 160, 150), (70, 110, 140)]
    for gy in range(12):
        for gx in range(22):
            x = w * (0.17 + gx * 0.033)
            y = h * (0.22 + gy * 0.042)
            if img.getpixel((int(x + 4), int(y + 4))) == (60, 70, 80):
                d.rectangle([x + 2, y + 2, x + w * 0.03, y + h * 0.038], fill=rng.choice(cols))
    for i in range(20):
        x, y = rng.uniform(0, w), rng.uniform(h * 0.74, h)
        d.line([(x, y), (x + 25, y)], fill=(120, 150, 180), width=2)


def _curtain_stage(d, w, h, floor=(110, 70, 40)):
    d.rectangle([0, 0, w, h], fill=(30, 20, 25))
    d.rectangle([w * 0.1, h * 0.15, w * 0.9, h * 0.7], fill=(60, 45, 50))
    d.polygon([(0, 0), (w * 0.16, 0), (w * 0.12, h * 0.7), (0, h * 0.75)], fill=(150, 25, 35))
    d.polygon([(w, 0), (w * 0.84, 0), (w * 0.88, h * 0.7), (w, h * 0.75)], fill=(150, 25, 35))
    d.rectangle([0, 0, w, h * 0.12], fill=(130, 20, 30))
    for i in range(8):
        d.line([(w * (0.02 + i * 0.018), 0), (w * (0.02 + i * 0.014), h * 0.72)], fill=(110, 15, 25), width=3)
        d.line([(w * (0.98 - i * 0.018), 0), (w * (0.98 - i * 0.014), h * 0.72)], fill=(110, 15, 25), width=3)
    d.polygon([(0, h * 0.75), (w, h * 0.75), (w, h * 0.82), (0, h * 0.82)], fill=floor)


def scene_stage(img, d, rng, w, h):
    _curtain_stage(d, w, h)
    light = Image.new("RGBA", img.size, (0, 0, 0, 0))
    ld = ImageDraw.Draw(light)
    ld.ellipse([w * 0.3, h * 0.66, w * 0.7, h * 0.8], fill=(255, 240, 190, 90))
    img.paste(Image.alpha_composite(img.convert("RGBA"), light).convert("RGB"))
    d2 = ImageDraw.Draw(img)
    for i, x in enumerate((0.38, 0.5, 0.62)):
        d2.rectangle([w * x - 12, h * 0.6, w * x + 12, h * 0.74], fill=(80, 60, 40))
        person(d2, w * x, h * 0.74, h * 0.32, [(40, 90, 150), (170, 60, 60), (60, 60, 60)][i])
    d2.rectangle([0, h * 0.82, w, h], fill=(15, 12, 15))
    for i in range(14):
        x = w * (0.04 + 0.07 * i)
        d2.ellipse([x - 14, h * 0.86, x + 14, h * 0.98], fill=(40, 35, 40))


def scene_books(img, d, rng, w, h):
    d.rectangle([0, 0, w, h], fill=(238, 230, 215))
    d.rectangle([0, h * 0.8, w, h], fill=(150, 105, 70))
    palette = [(180, 50, 50), (40, 90, 150), (230, 190, 70), (60, 130, 90), (120, 60, 130), (230, 120, 50),
               (30, 30, 40), (200, 200, 190)]
    y = h * 0.8
    for i in range(10):
        bh = h * rng.uniform(0.045, 0.075)
        bw = w * rng.uniform(0.42, 0.6)
        x = w * 0.5 - bw / 2 + w * rng.uniform(-0.04, 0.04)
        c = palette[i % len(palette)]
        d.rectangle([x, y - bh, x + bw, y], fill=c)
        d.rectangle([x + bw * 0.1, y - bh * 0.7, x + bw * 0.5, y - bh * 0.35], fill=lerp(c, (255, 255, 255), 0.6))
        y -= bh
    # a standing book to the side
    d.rectangle([w * 0.08, h * 0.45, w * 0.2, h * 0.8], fill=(40, 90, 150))
    d.rectangle([w * 0.1, h * 0.5, w * 0.18, h * 0.55], fill=(230, 230, 230))


def scene_reading(img, d, rng, w, h):
    d.rectangle([0, 0, w, h], fill=(60, 50, 45))
    for row in range(4):
        y = h * (0.05 + 0.16 * row)
        d.rectangle([0, y + h * 0.13, w, y + h * 0.15], fill=(110, 80, 50))
        x = 0
        while x < w:
            bw = rng.uniform(8, 18)
            d.rectangle([x, y + h * rng.uniform(0.02, 0.05), x + bw, y + h * 0.13],
                        fill=rng.choice([(150, 40, 40), (40, 80, 130), (200, 170, 80), (60, 110, 70), (180, 180, 170)]))
            x += bw + 2
    d.rectangle([0, h * 0.7, w, h], fill=(90, 70, 55))
    person(d, w * 0.5, h * 0.9, h * 0.55, (120, 50, 60), hair=(200, 200, 200))
    d.polygon([(w * 0.42, h * 0.9), (w * 0.58, h * 0.9), (w * 0.55, h * 0.56), (w * 0.45, h * 0.56)], fill=(120, 85, 55))
    d.rectangle([w * 0.44, h * 0.53, w * 0.56, h * 0.57], fill=(245, 240, 225))
    for i in range(7):
        person(d, w * (0.06 + 0.145 * i), h * 1.08, h * 0.3, (30, 30, 30), hair=(40, 30, 25))


def scene_theater(img, d, rng, w, h):
    _curtain_stage(d, w, h, floor=(90, 88, 86))
    d.rectangle([w * 0.12, h * 0.15, w * 0.88, h * 0.75], fill=(120, 118, 116))
    # a house half buried in ash
    d.rectangle([w * 0.3, h * 0.4, w * 0.55, h * 0.68], fill=(200, 60, 50))
    d.polygon([(w * 0.28, h * 0.4), (w * 0.57, h * 0.4), (w * 0.425, h * 0.28)], fill=(60, 60, 70))
    d.rectangle([w * 0.36, h * 0.48, w * 0.42, h * 0.56], fill=(250, 220, 140))
    d.polygon([(w * 0.12, h * 0.75), (w * 0.12, h * 0.6), (w * 0.4, h * 0.66), (w * 0.7, h * 0.58),
               (w * 0.88, h * 0.64), (w * 0.88, h * 0.75)], fill=(55, 52, 50))
    for i in range(120):
        x, y = rng.uniform(w * 0.12, w * 0.88), rng.uniform(h * 0.15, h * 0.7)
        d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(70, 68, 66))
    person(d, w * 0.65, h * 0.76, h * 0.3, (60, 80, 110))
    person(d, w * 0.72, h * 0.76, h * 0.22, (170, 140, 60), hair=(200, 160, 80))
    d.rectangle([0, h * 0.82, w, h], fill=(15, 12, 15))


def scene_concert(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.6), (30, 40, 90), (230, 140, 110))
    d.polygon([(0, h * 0.2), (w * 0.18, h * 0.3), (w * 0.22, h * 0.65), (0, h * 0.7)], fill=(40, 38, 45))
    d.polygon([(w, h * 0.15), (w * 0.85, h * 0.3), (w * 0.8, h * 0.65), (w, h * 0.7)], fill=(45, 42, 50))
    d.rectangle([0, h * 0.6, w, h], fill=(50, 60, 45))
    d.rectangle([w * 0.3, h * 0.35, w * 0.7, h * 0.55], fill=(25, 25, 30))
    d.rectangle([w * 0.28, h * 0.3, w * 0.72, h * 0.35], fill=(60, 60, 65))
    beams = Image.new("RGBA", img.size, (0, 0, 0, 0))
    bd = ImageDraw.Draw(beams)
    for i, c in enumerate([(255, 80, 180, 70), (80, 200, 255, 70), (255, 220, 90, 70), (120, 255, 140, 60)]):
        x = w * (0.35 + 0.1 * i)
        bd.polygon([(x - 6, h * 0.35), (x + 6, h * 0.35), (x + w * 0.2 * (i - 1.5), 0), (x + w * 0.2 * (i - 1.5) - 60, 0)],
                   fill=c)
    img.paste(Image.alpha_composite(img.convert("RGBA"), beams).convert("RGB"))
    d2 = ImageDraw.Draw(img)
    for i in range(3):
        person(d2, w * (0.42 + 0.08 * i), h * 0.55, h * 0.14, [(240, 240, 240), (200, 60, 60), (240, 200, 60)][i])
    d2.rectangle([w * 0.3, h * 0.55, w * 0.7, h * 0.6], fill=(70, 70, 75))
    for i in range(260):
        t = i / 260
        x = rng.uniform(0, w)
        y = h * (0.62 + 0.36 * t)
        s = h * (0.02 + 0.05 * t)
        d2.ellipse([x - s * 0.5, y - s * 0.5, x + s * 0.5, y + s * 0.5], fill=(20 + int(30 * t), 20, 25))
    flag_is(d2, w * 0.08, h * 0.75, w * 0.06)
    d2.line([(w * 0.08, h * 0.75), (w * 0.08, h * 0.95)], fill=(200, 200, 200), width=3)


def scene_crowd(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.35), (110, 160, 215), (220, 230, 240))
    ridge(rng, w, h, h * 0.32, h * 0.08, 5, (80, 80, 95), d)
    d.rectangle([0, h * 0.35, w, h], fill=(100, 145, 70))
    for i in range(45):
        t = i / 45
        x = rng.uniform(0, w)
        y = h * (0.45 + 0.55 * t)
        s = h * (0.12 + 0.3 * t)
        person(d, x, y, s, rng.choice([(200, 40, 50), (30, 70, 150), (250, 250, 250), (240, 190, 40), (60, 60, 60)]),
               arms_up=(i % 7 == 0))
        if i % 9 == 0:
            flag_is(d, x + s * 0.2, y - s * 1.15, s * 0.35)


def scene_tv_still(img, d, rng, w, h):
    vgrad(d, (0, 0, w, h * 0.55), (60, 70, 95), (200, 150, 120))
    ridge(rng, w, h, h * 0.52, h * 0.1, 6, (60, 55, 60), d)
    d.rectangle([0, h * 0.55, w, h], fill=(40, 38, 40))
    for i in range(6):
        x = w * (0.3 + 0.07 * i)
        d.polygon([(x - 10, h * 0.57), (x + 10, h * 0.57), (x, h * 0.57 - h * rng.uniform(0.05, 0.15))], fill=(255, 160, 50))
    d.polygon([(w * 0.25, h * 0.58), (w * 0.75, h * 0.56), (w * 0.9, h * 0.8), (w * 0.1, h * 0.82)], fill=(190, 80, 30))
    # lower third and channel bug
    d.rectangle([w * 0.06, h * 0.8, w * 0.7, h * 0.9], fill=(240, 240, 240))
    d.rectangle([w * 0.06, h * 0.8, w * 0.08, h * 0.9], fill=(200, 30, 40))
    for k, lw in enumerate((0.4, 0.28)):
        d.rectangle([w * 0.1, h * (0.82 + 0.04 * k), w * (0.1 + lw), h * (0.845 + 0.04 * k)], fill=(60, 60, 70))
    d.rounded_rectangle([w * 0.86, h * 0.06, w * 0.95, h * 0.14], radius=6, fill=(250, 250, 250))
    d.rectangle([w * 0.875, h * 0.08, w * 0.935, h * 0.12], fill=(200, 30, 40))


SCENES = {name[len("scene_"):]: fn for name, fn in globals().items() if name.startswith("scene_")}


# --------------------------------------------------------------------------
# rendering and saving
# --------------------------------------------------------------------------

def seed_for(bundle: str, filename: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{bundle}/{filename}".encode()).digest()[:8], "big")


def render(bundle: str, filename: str, scene: str, size: tuple[int, int]) -> Image.Image:
    w, h = size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE
    img = Image.new("RGB", (w, h), (128, 128, 128))
    d = ImageDraw.Draw(img)
    SCENES[scene](img, d, random.Random(seed_for(bundle, filename)), w, h)
    return img.resize(size, Image.Resampling.LANCZOS)


def save(img: Image.Image, path: Path) -> None:
    ext = path.suffix.lower()
    if ext in (".jpg", ".jpeg"):
        img.save(path, "JPEG", quality=70, optimize=True)
    elif ext == ".png":
        img.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, "PNG", optimize=True)
    elif ext == ".webp":
        img.save(path, "WEBP", quality=70, method=6)
    elif ext == ".gif":
        img.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            path, "GIF", optimize=True)
    else:
        raise ValueError(f"unsupported image type: {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content", type=Path, default=ROOT / "content", help="content directory (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="only check that every photo exists")
    args = ap.parse_args(argv)

    missing = 0
    total = 0
    for bundle, photos in PHOTOS.items():
        bdir = args.content / bundle
        for filename, scene, size in photos:
            path = bdir / filename
            if args.check:
                if not path.is_file():
                    print(f"missing: {path}", file=sys.stderr)
                    missing += 1
                continue
            if not bdir.is_dir():
                print(f"warning: bundle directory {bdir} does not exist, creating it", file=sys.stderr)
                bdir.mkdir(parents=True)
            save(render(bundle, filename, scene, size), path)
            n = path.stat().st_size
            total += n
            print(f"{path.relative_to(args.content)}  {size[0]}x{size[1]}  {n // 1024} KB")
    if args.check:
        return 1 if missing else 0
    print(f"total {total // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
