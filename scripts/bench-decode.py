"""Pillow's side of scripts/bench-decode.sh: the CLIP image path (open, convert
to RGB, bicubic resize of the short side to 224, centre crop, ToTensor and
Normalize in float32) on one core, over every .jpg of a directory, as
images/s. Run with Debian's /usr/bin/python3 (python3-pil, python3-numpy)."""
import glob
import os
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def preprocess(path, size=224):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = np.asarray(img, dtype=np.float32) / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def main():
    files = sorted(glob.glob(os.path.join(sys.argv[1], "*.jpg")))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    for f in files[:4]:  # warm the page cache and the imports
        preprocess(f)
    t0 = time.process_time()
    for i in range(n):
        preprocess(files[i % len(files)])
    el = time.process_time() - t0
    print(f"pillow {n / el:.1f} images/s (CPU time)")


if __name__ == "__main__":
    main()
