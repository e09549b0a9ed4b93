#!/usr/bin/env python3
"""Writes N photo-like JPEGs (smooth random colour fields, soft ellipses, a
horizon, fine grain; 4:2:0, quality 90, as cameras and web crawls make them)
and a Karpathy-split JSON (split "test") with CAPTIONS captions each.

    scripts/make-photos.py OUT_DIR N [--size 640x480] [--captions 1] [--seed 1] [--format jpg|png]

Used to measure `mope eval` against `mope bench` and its peak memory
(docs/data.md); scripts/bench-decode.sh takes the same directory."""
import argparse, json, os
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WORDS = ["a", "red", "blue", "small", "large", "dog", "cat", "tree", "house", "street", "beach", "man",
         "woman", "car", "field", "sky", "near", "under", "with", "the", "on", "sunny", "old", "green"]


def photo(rng, w, h):
    # Low-frequency colour field: coarse noise upsampled with bicubic.
    base = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(base, "RGB").resize((w, h), Image.BICUBIC)
    d = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.3, 0.7))
    d.rectangle([0, horizon, w, h], fill=tuple(int(v) for v in rng.integers(20, 160, 3)))
    for _ in range(int(rng.integers(4, 12))):
        x, y = rng.integers(0, w), rng.integers(0, h)
        rx, ry = rng.integers(10, w // 4), rng.integers(10, h // 4)
        d.ellipse([x - rx, y - ry, x + rx, y + ry], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1, 3))))
    a = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, size=(h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("n", type=int)
    p.add_argument("--size", default="640x480")
    p.add_argument("--captions", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--format", default="jpg", choices=["jpg", "png"])
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    images = []
    for i in range(a.n):
        name = "%06d.%s" % (i, a.format)
        im = photo(rng, w, h)
        if a.format == "jpg":
            im.save(os.path.join(a.out, name), quality=90, subsampling=2)
        else:
            im.save(os.path.join(a.out, name))
        sents = [{"raw": " ".join(rng.choice(WORDS, size=int(rng.integers(5, 12))))} for _ in range(a.captions)]
        images.append({"filename": name, "split": "test", "sentences": sents})
    with open(os.path.join(a.out, "dataset.json"), "w") as f:
        json.dump({"images": images}, f)


if __name__ == "__main__":
    main()
