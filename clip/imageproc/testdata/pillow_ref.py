#!/usr/bin/env python3
"""Pillow reference outputs for mopeclip's clip/imageproc parity test.

usage: pillow_ref.py OUTDIR

Generates test images (PNG in many modes and odd sizes, JPEG "photos" at
several chroma subsamplings and qualities) under OUTDIR/img, and for each
writes under OUTDIR/ref, as float32 .npy files:

  NAME.rgb.npy                   Image.open(f).convert("RGB")      [H, W, 3]
  NAME.S.MODE.u8.npy             the resized (and cropped) 8-bit image [S, S, 3]
  NAME.S.MODE.pre.npy            ToTensor + Normalize with CLIP's mean/std [3, S, S]

MODE is "resize-crop" (torchvision Resize(S, BICUBIC) + CenterCrop(S),
reimplemented here on Pillow alone so that torchvision is not needed) or
"squash" (resize to S x S). OUTDIR/manifest.json lists the cases.

Exit status 3 means numpy or Pillow is missing (the Go test skips then).
The images are generated deterministically; nothing here is read by the Go
code except the files written to OUTDIR.
"""

import json
import os
import struct
import sys
import warnings
import zlib

try:
    import numpy as np
    import PIL
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print(f"pillow_ref.py: missing Python module: {e.name}", file=sys.stderr)
    sys.exit(3)

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
HERE = os.path.dirname(os.path.abspath(__file__))
# Pillow warns about palette transparency given as bytes; it does not affect RGB.
warnings.filterwarnings("ignore", message="Palette images with Transparency")


# ---------------------------------------------------------------- reference


def resize_crop(im, size, resize=None):
    """torchvision Resize(resize or size, BICUBIC) then CenterCrop(size)."""
    r = resize or size
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = r, int(r * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    top = int(round((nh - size) / 2.0))
    left = int(round((nw - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def squash(im, size):
    if im.size == (size, size):
        return im.copy()
    return im.resize((size, size), Image.BICUBIC)


def normalize(a8):
    """ToTensor + Normalize in float32, as torchvision computes them."""
    x = a8.astype(np.float32) / np.float32(255)
    mean = np.array(MEAN, dtype=np.float64).astype(np.float32)
    std = np.array(STD, dtype=np.float64).astype(np.float32)
    return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1))


def torch_normalize(a8):
    try:
        import torch
    except ImportError:
        return None
    t = torch.from_numpy(np.array(a8, copy=True)).permute(2, 0, 1).contiguous()
    t = t.to(dtype=torch.float32).div(255)
    mean = torch.as_tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.as_tensor(STD, dtype=torch.float32)[:, None, None]
    return t.sub(mean).div(std).numpy()


# ---------------------------------------------------------------- images


def rng(seed):
    return np.random.default_rng(seed)


def smooth_rgb(w, h, seed):
    """Gradients, a few saturated shapes and mild noise, uint8 [h, w, 3]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 100 * np.sin(x / 37.0 + y / 53.0)
    g = 127 + 100 * np.cos(x / 23.0 - y / 41.0)
    b = 127.5 * x / max(w - 1, 1) + 127.5 * y / max(h - 1, 1)
    img = np.stack([r, g, b], -1)
    img += rng(seed).normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def photo_rgb(w, h, seed):
    """A synthetic photo: smooth gradients + sharp colour edges + noise."""
    img = smooth_rgb(w, h, seed).astype(np.float64)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img[h // 4 : h // 2, w // 5 : w // 2] = (255, 0, 0)
    img[h // 2 : 3 * h // 4, w // 2 : 4 * w // 5] = (0, 0, 255)
    disk = (x - 0.7 * w) ** 2 + (y - 0.3 * h) ** 2 < (min(w, h) / 6.0) ** 2
    img[disk] = (0, 255, 0)
    img[:, w // 3] = (255, 0, 255)  # 1-pixel magenta line
    if h > 8:
        img[h // 8, :] = (255, 255, 0)  # 1-pixel yellow line
    # stripes of alternating saturated colours (high chroma frequency)
    sx0, sx1 = w // 10, w // 10 + max(w // 6, 1)
    sy0, sy1 = 3 * h // 4, min(h, 3 * h // 4 + max(h // 6, 1))
    for i in range(sx0, sx1):
        img[sy0:sy1, i] = (255, 128, 0) if (i // 2) % 2 else (0, 64, 255)
    img += rng(seed + 1).normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path, w, h, depth, ctype, rows, extra=b""):
    """A minimal PNG writer for the bit depths Pillow cannot save."""
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    data += extra
    data += png_chunk(b"IDAT", zlib.compress(raw, 9))
    data += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def make_images(imgdir):
    """Writes the test images; returns [(name, file, kind)]."""
    cases = []

    def png(name, im, **kw):
        p = os.path.join(imgdir, name + ".png")
        im.save(p, "PNG", **kw)
        cases.append((name, p, "png"))

    def jpg(name, im, **kw):
        p = os.path.join(imgdir, name + ".jpg")
        im.save(p, "JPEG", **kw)
        cases.append((name, p, "jpeg"))

    # RGB of odd sizes: upscale, downscale, extreme aspect ratios, crop rounding.
    for i, (w, h) in enumerate(
        [(1, 1), (7, 300), (333, 221), (1000, 17), (16, 9), (640, 480), (1203, 901),
         (227, 224), (224, 225), (224, 224), (2, 3)]
    ):
        png(f"rgb_{w}x{h}", Image.fromarray(photo_rgb(w, h, 10 + i), "RGB"))
    base = photo_rgb(333, 221, 3)
    png("l_333x221", Image.fromarray(base, "RGB").convert("L"))
    png("l_5x400", Image.fromarray(photo_rgb(5, 400, 4), "RGB").convert("L"))
    png("p_7x300", Image.fromarray(photo_rgb(7, 300, 5), "RGB").convert("P", palette=Image.ADAPTIVE, colors=200))
    p = Image.fromarray(base, "RGB").quantize(colors=64)
    png("p_trns_333x221", p, transparency=bytes(range(0, 256, 4)))
    a = np.dstack([base, np.tile(np.linspace(0, 255, 333).astype(np.uint8), (221, 1))])
    a[:40, :40, 3] = 0  # fully transparent corner: colours must survive
    png("rgba_333x221", Image.fromarray(a, "RGBA"))
    la = np.dstack([base[:40, :50, 0], base[:40, :50, 1]])
    png("la_50x40", Image.fromarray(la, "LA"))
    v16 = (np.arange(64 * 48).reshape(48, 64) * 7 % 1200).astype(np.uint16)
    png("i16_64x48", Image.fromarray(v16))  # Pillow: "I;16", saturates at 255 in RGB
    png("bit1_31x17", Image.fromarray(base[:17, :31, 0] > 128).convert("1"))

    # Bit depths Pillow cannot write: a tiny PNG writer.
    r16 = (rng(7).integers(0, 65536, (37, 45, 3))).astype(">u2")
    write_png(os.path.join(imgdir, "rgb16_45x37.png"), 45, 37, 16, 2, [r.tobytes() for r in r16])
    cases.append(("rgb16_45x37", os.path.join(imgdir, "rgb16_45x37.png"), "png"))
    r16a = (rng(8).integers(0, 65536, (37, 45, 4))).astype(">u2")
    write_png(os.path.join(imgdir, "rgba16_45x37.png"), 45, 37, 16, 6, [r.tobytes() for r in r16a])
    cases.append(("rgba16_45x37", os.path.join(imgdir, "rgba16_45x37.png"), "png"))
    g16 = (np.arange(20 * 10).reshape(10, 20) * 3).astype(">u2")
    write_png(os.path.join(imgdir, "gray16trns_20x10.png"), 20, 10, 16, 0, [r.tobytes() for r in g16],
              extra=png_chunk(b"tRNS", struct.pack(">H", 30)))
    cases.append(("gray16trns_20x10", os.path.join(imgdir, "gray16trns_20x10.png"), "png"))
    g2 = rng(9).integers(0, 4, (7, 33))
    rows = []
    for r in g2:
        bits = 0
        out = bytearray()
        for i, v in enumerate(r):
            bits = (bits << 2) | int(v)
            if i % 4 == 3:
                out.append(bits)
                bits = 0
        if len(r) % 4:
            out.append(bits << (2 * (4 - len(r) % 4)))
        rows.append(bytes(out))
    write_png(os.path.join(imgdir, "gray2_33x7.png"), 33, 7, 2, 0, rows)
    cases.append(("gray2_33x7", os.path.join(imgdir, "gray2_33x7.png"), "png"))

    # JPEG photos. subsampling: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0.
    sub = {"444": 0, "422": 1, "420": 2}
    for (w, h), s, q, extra in [
        ((640, 480), "420", 75, {}),
        ((640, 480), "420", 95, {}),
        ((640, 480), "422", 75, {}),
        ((640, 480), "422", 95, {}),
        ((640, 480), "444", 75, {}),
        ((640, 480), "444", 95, {}),
        ((333, 221), "420", 90, {}),
        ((333, 221), "422", 75, {}),
        ((333, 221), "444", 75, {}),
        ((97, 61), "420", 85, {"progressive": True}),
        ((1, 1), "420", 90, {}),
        ((3, 3), "420", 90, {}),  # chroma 2 wide: libjpeg replicates instead
        ((5, 5), "420", 90, {}),
        ((2, 7), "422", 90, {}),
        ((7, 2), "420", 90, {}),
    ]:
        name = f"jpeg_{w}x{h}_{s}_q{q}" + ("_prog" if extra else "")
        jpg(name, Image.fromarray(photo_rgb(w, h, w * 7 + h), "RGB"), quality=q, subsampling=sub[s], **extra)
    jpg("jpeg_gray_333x221", Image.fromarray(base, "RGB").convert("L"), quality=85)
    cmyk = Image.fromarray(photo_rgb(120, 80, 77), "RGB").convert("CMYK")
    jpg("jpeg_cmyk_120x80", cmyk, quality=90)
    # 4:4:0 cannot be written by Pillow; the committed sample was made with
    # `jpegtran -transpose` from a 4:2:2 photo (see the Go test).
    p440 = os.path.join(HERE, "photo_97x161_440.jpg")
    if os.path.exists(p440):
        cases.append(("jpeg_97x161_440", p440, "jpeg"))
    return cases


OUTPUTS = [(224, "resize-crop"), (224, "squash"), (32, "resize-crop")]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    imgdir, refdir = os.path.join(out, "img"), os.path.join(out, "ref")
    os.makedirs(imgdir, exist_ok=True)
    os.makedirs(refdir, exist_ok=True)
    torch_checked = False
    manifest = {"pillow": PIL.__version__, "numpy": np.__version__, "cases": []}
    for name, path, kind in make_images(imgdir):
        with Image.open(path) as im:
            mode = im.mode
            sampling = None
            if kind == "jpeg":
                from PIL import JpegImagePlugin

                sampling = JpegImagePlugin.get_sampling(im)
            rgb = im.convert("RGB")
        arr = np.asarray(rgb)
        dec = os.path.join(refdir, name + ".rgb.npy")
        np.save(dec, arr.astype("<f4"))
        case = {
            "name": name,
            "file": path,
            "kind": kind,
            "pil_mode": mode,
            "jpeg_sampling": sampling,
            "width": rgb.size[0],
            "height": rgb.size[1],
            "decoded": dec,
            "outputs": [],
        }
        for size, mode_name in OUTPUTS:
            if mode_name == "resize-crop":
                res = resize_crop(rgb, size)
            else:
                res = squash(rgb, size)
            a8 = np.asarray(res.convert("RGB"))
            assert a8.shape == (size, size, 3), (name, a8.shape)
            pre = normalize(a8)
            t = torch_normalize(a8)
            if t is not None:
                torch_checked = True
                assert np.array_equal(t, pre), f"numpy and torch normalisation differ for {name}"
            stem = os.path.join(refdir, f"{name}.{size}.{mode_name}")
            np.save(stem + ".u8.npy", a8.astype("<f4"))
            np.save(stem + ".pre.npy", pre.astype("<f4"))
            case["outputs"].append(
                {"size": size, "mode": mode_name, "resized": stem + ".u8.npy", "pre": stem + ".pre.npy"}
            )
        manifest["cases"].append(case)
    manifest["torch_checked"] = torch_checked
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
