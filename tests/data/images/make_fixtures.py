#!/usr/bin/python3
"""Regenerates the image-decoding fixtures. Needs Pillow 9.4 (Debian python3-pil) and numpy.

Each <name>.<ext> has <name>.expected.png beside it: what PIL gives for
Image.open(file).convert("RGB") (after ImageOps.exif_transpose for the orient_* files),
stored as plain 8-bit RGB PNG. Every file is tiny; the pixels are seeded random noise.
"""
import io, os, struct, subprocess, zlib
import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20250315)


def path(name):
    return os.path.join(HERE, name)


def png_bytes(arr, bit_depth, color_type, palette=None, trns=None, exif=None):
    """A minimal PNG writer, so every bit depth / colour type can be produced exactly."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    h, w = arr.shape[:2]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    rows = []
    for y in range(h):
        row = arr[y].reshape(w * channels)
        if bit_depth == 16:
            raw = row.astype(">u2").tobytes()
        elif bit_depth == 8:
            raw = row.astype(np.uint8).tobytes()
        else:  # pack sub-byte samples, most significant first
            per = 8 // bit_depth
            vals = list(row) + [0] * ((-len(row)) % per)
            raw = bytes(sum(int(v) << (8 - bit_depth * (i + 1)) for i, v in enumerate(vals[k:k + per]))
                        for k in range(0, len(vals), per))
        rows.append(b"\0" + raw)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    if exif is not None:
        out += chunk(b"eXIf", exif)
    if palette is not None:
        out += chunk(b"PLTE", bytes(palette))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
    return out


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


def expect(name, transpose=False):
    im = Image.open(path(name))
    if transpose:
        im = ImageOps.exif_transpose(im)
    rgb = np.asarray(im.convert("RGB"))
    write(os.path.splitext(name)[0] + ".expected.png", png_bytes(rgb, 8, 2))


def noise(h, w, c, hi=256):
    return rng.integers(0, hi, (h, w, c) if c else (h, w), dtype=np.int64)


def exif_with_orientation(value):
    e = Image.Exif()
    e[0x0112] = value
    return e.tobytes()  # starts with "Exif\0\0"; JPEG APP1 wants it, PNG eXIf wants the TIFF only


# --- PNG: every colour type and bit depth Pillow reads ---------------------------------
write("png_gray1.png", png_bytes(noise(7, 13, 0, 2), 1, 0)); expect("png_gray1.png")
write("png_gray4.png", png_bytes(noise(7, 13, 0, 16), 4, 0)); expect("png_gray4.png")
write("png_gray8.png", png_bytes(noise(7, 13, 0), 8, 0)); expect("png_gray8.png")
g16 = noise(7, 13, 0, 65536); g16[0, :4] = [0, 200, 255, 256]  # around Pillow's clip at 255
write("png_gray16.png", png_bytes(g16, 16, 0)); expect("png_gray16.png")
write("png_rgb16.png", png_bytes(noise(7, 13, 3, 65536), 16, 2)); expect("png_rgb16.png")
write("png_rgba8.png", png_bytes(noise(7, 13, 4), 8, 6)); expect("png_rgba8.png")
write("png_rgba16.png", png_bytes(noise(7, 13, 4, 65536), 16, 6)); expect("png_rgba16.png")
write("png_gray_alpha8.png", png_bytes(noise(7, 13, 2), 8, 4)); expect("png_gray_alpha8.png")
write("png_gray_alpha16.png", png_bytes(noise(7, 13, 2, 65536), 16, 4)); expect("png_gray_alpha16.png")
pal = noise(16, 1, 3).reshape(-1)
write("png_palette4_trns.png", png_bytes(noise(7, 13, 0, 16), 4, 3, palette=pal, trns=bytes(range(0, 160, 10))))
expect("png_palette4_trns.png")
write("png_rgb8_trns.png", png_bytes(noise(7, 13, 3), 8, 2, trns=struct.pack(">HHH", 1, 2, 3)))
expect("png_rgb8_trns.png")
subprocess.run(["convert", path("png_rgba8.png"), "-strip", "-interlace", "PNG", "PNG32:" + path("png_interlaced.png")], check=True)
expect("png_interlaced.png")

# --- EXIF orientation: orient_N stores the upright image so that applying N restores it ----
upright = noise(4, 7, 3).astype(np.uint8)
write("orient_upright.png", png_bytes(upright, 8, 2))
inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
           7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
for n, op in inverse.items():
    stored = Image.fromarray(upright)
    if op is not None:
        stored = stored.transpose(op)
    write(f"orient_{n}.png", png_bytes(np.asarray(stored), 8, 2, exif=exif_with_orientation(n)[6:]))
    check = np.asarray(ImageOps.exif_transpose(Image.open(path(f"orient_{n}.png"))).convert("RGB"))
    assert (check == upright).all(), n

# JPEG with orientation 6 (camera held upright, sensor landscape): 16x8 stored, 8x16 shown.
blocks = np.zeros((8, 16, 3), np.uint8)
blocks[:, :8] = (200, 30, 30); blocks[:, 8:] = (30, 30, 200); blocks[:4, :4] = (30, 200, 30)
buf = io.BytesIO(); Image.fromarray(blocks).save(buf, "JPEG", quality=95, exif=exif_with_orientation(6))
write("orient6.jpg", buf.getvalue()); expect("orient6.jpg", transpose=True)
assert Image.open(path("orient6.jpg")).getexif()[0x0112] == 6

# --- JPEG: colour models, progressive, a JPEG under a .png name ----------------------------
smooth = (np.add.outer(np.arange(24), np.arange(32))[..., None] * [5, 3, 2] % 256).astype(np.uint8)
smooth = np.clip(smooth.astype(int) + noise(24, 32, 3, 24), 0, 255).astype(np.uint8)
buf = io.BytesIO(); Image.fromarray(smooth).save(buf, "JPEG", quality=90); write("jpeg_420.jpg", buf.getvalue())
expect("jpeg_420.jpg")
buf = io.BytesIO(); Image.fromarray(smooth).save(buf, "JPEG", quality=90, progressive=True)
write("jpeg_progressive.jpg", buf.getvalue()); expect("jpeg_progressive.jpg")
buf = io.BytesIO(); Image.fromarray(smooth).convert("L").save(buf, "JPEG", quality=90); write("jpeg_gray.jpg", buf.getvalue())
expect("jpeg_gray.jpg")
buf = io.BytesIO(); Image.fromarray(smooth).convert("CMYK").save(buf, "JPEG", quality=90)
write("jpeg_cmyk.jpg", buf.getvalue()); expect("jpeg_cmyk.jpg")
write("jpeg_named.png", open(path("jpeg_420.jpg"), "rb").read())

# --- WebP (Pillow decodes with libwebp too), BMP, GIF --------------------------------------
buf = io.BytesIO(); Image.fromarray(smooth).save(buf, "WEBP", quality=80); write("webp_lossy.webp", buf.getvalue())
expect("webp_lossy.webp")
rgba = np.concatenate([smooth, noise(24, 32, 1).astype(np.uint8)], axis=2)
buf = io.BytesIO(); Image.fromarray(rgba).save(buf, "WEBP", quality=80); write("webp_lossy_alpha.webp", buf.getvalue())
expect("webp_lossy_alpha.webp")
buf = io.BytesIO(); Image.fromarray(rgba).save(buf, "WEBP", lossless=True, exact=True)
write("webp_lossless_alpha.webp", buf.getvalue()); expect("webp_lossless_alpha.webp")
buf = io.BytesIO(); Image.fromarray(noise(5, 9, 3).astype(np.uint8)).save(buf, "BMP"); write("bmp_rgb24.bmp", buf.getvalue())
expect("bmp_rgb24.bmp")
buf = io.BytesIO(); Image.fromarray(smooth).quantize(32).save(buf, "GIF"); write("gif_palette.gif", buf.getvalue())
expect("gif_palette.gif")
buf = io.BytesIO(); Image.fromarray(smooth).save(buf, "WEBP", lossless=True, exif=exif_with_orientation(8))
write("webp_orient8.webp", buf.getvalue()); expect("webp_orient8.webp", transpose=True)
# Index 0 is transparent: Pillow's convert("RGB") shows its palette colour, stb_image leaves it black.
gif = Image.fromarray(noise(6, 10, 0, 4).astype(np.uint8), "P")
gif.putpalette([250, 10, 10, 10, 250, 10, 10, 10, 250, 200, 200, 200])
buf = io.BytesIO(); gif.save(buf, "GIF", transparency=0); write("gif_transparent.gif", buf.getvalue())
expect("gif_transparent.gif")
# A 1x1 PNG whose zlib stream inflates to 4 MiB: Pillow reads the 4 bytes it needs; stb_image would
# inflate it all, so Tessera refuses it.
write("png_zlib_bomb.png", png_bytes(np.zeros((1, 1, 3), np.uint8), 8, 2)[:33] + (lambda d: struct.pack(">I", len(d)) + b"IDAT" + d + struct.pack(">I", zlib.crc32(b"IDAT" + d) & 0xFFFFFFFF))(zlib.compress(b"\0" * (4 << 20), 9)) + png_bytes(np.zeros((1, 1, 3), np.uint8), 8, 2)[-12:])
assert Image.open(path("png_zlib_bomb.png")).convert("RGB").getpixel((0, 0)) == (0, 0, 0)

# --- Resampling references: PIL resize(BICUBIC) and ImageOps.pad on a small source ----------
src = (np.add.outer(np.arange(17) * 9, np.arange(29) * 5)[..., None] * [1, 2, 3] % 256).astype(np.int64)
src = np.clip(src + noise(17, 29, 3, 40) - 20, 0, 255).astype(np.uint8)
write("resize_src.png", png_bytes(src, 8, 2))
for w, h in [(64, 40), (5, 3), (29, 8), (11, 17), (29, 40), (96, 5), (1, 1)]:
    out = Image.fromarray(src).resize((w, h), Image.Resampling.BICUBIC)
    write(f"resize_{w}x{h}.png", png_bytes(np.asarray(out), 8, 2))
for w, h in [(48, 48), (40, 16), (12, 30)]:
    out = ImageOps.pad(Image.fromarray(src), (w, h), color=(127, 127, 127))
    write(f"pad_{w}x{h}.png", png_bytes(np.asarray(out), 8, 2))
print("fixtures written to", HERE)
