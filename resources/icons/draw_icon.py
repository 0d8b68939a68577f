"""Draw the siamgui app icon (run once; the outputs are committed).

    .venv/bin/python resources/icons/draw_icon.py

Writes beside this file: ``siamgui.png`` (512 px, window icon and Linux),
``siamgui.ico`` (16-256 px, Windows executable) and ``siamgui.icns``
(macOS bundle). The picture: two overlapping "twin" circles on a blue
rounded square, with a check mark where they meet (two inputs, one verdict).
Drawn 4x larger and scaled down for smooth edges; no fonts, so the result is
the same on every machine.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 1024
SS = 4  # supersampling factor


def draw(size: int = SIZE) -> Image.Image:
    s = size * SS
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))

    # Background: a rounded square with a vertical blue gradient.
    grad = Image.new("RGBA", (1, 256))
    top, bottom = (38, 110, 214), (18, 44, 110)
    for y in range(256):
        t = y / 255
        grad.putpixel((0, y), tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)) + (255,))
    grad = grad.resize((s, s), Image.Resampling.BILINEAR)
    mask = Image.new("L", (s, s), 0)
    pad = int(s * 0.04)
    ImageDraw.Draw(mask).rounded_rectangle((pad, pad, s - pad, s - pad), radius=int(s * 0.2), fill=255)
    img.paste(grad, (0, 0), mask)

    d = ImageDraw.Draw(img)
    r = int(s * 0.2)
    cy = int(s * 0.4)
    line = int(s * 0.045)
    for cx, colour in ((int(s * 0.37), (255, 255, 255, 255)), (int(s * 0.63), (120, 220, 255, 255))):
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=line)

    # The verdict: a check mark under the overlap.
    w = int(s * 0.055)
    pts = [(s * 0.41, s * 0.76), (s * 0.48, s * 0.83), (s * 0.60, s * 0.70)]
    d.line([(int(x), int(y)) for x, y in pts], fill=(140, 235, 140, 255), width=w, joint="curve")
    for x, y in (pts[0], pts[2]):
        d.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=(140, 235, 140, 255))

    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    big = draw(SIZE)
    big.resize((512, 512), Image.Resampling.LANCZOS).save(HERE / "siamgui.png", optimize=True)
    big.save(HERE / "siamgui.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    big.save(HERE / "siamgui.icns")  # Pillow writes every ICNS size from the 1024 px image
    for name in ("siamgui.png", "siamgui.ico", "siamgui.icns"):
        print(f"wrote {HERE / name} ({(HERE / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
