#!/usr/bin/env python3
"""Independent PyTorch implementation of CLIP for parity checks.

Reads a Hugging Face layout model directory (config.json + model.safetensors,
parsed here with json + numpy, no transformers/safetensors packages needed),
pixels [N,3,S,S] from a float32 .npy, token ids from a JSON file
{"ids": [[...], ...]} (rows zero-padded to the same length), and writes the
projected image and text embeddings as float32 .npy files.

usage: torch_clip.py MODEL_DIR PIXELS.npy IDS.json OUT_IMAGE.npy OUT_TEXT.npy
"""
import json
import math
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[base + b: base + e]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[info["dtype"]])
        out[name] = torch.from_numpy(arr.astype(np.float32 if info["dtype"] != "I64" else np.int64).reshape(info["shape"]).copy())
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def act(x, name):
    if name == "gelu":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    return x * torch.sigmoid(1.702 * x)


def encoder(x, W, prefix, cfg, causal):
    """x: [B, T, C]. Head counts are read from the weight shapes."""
    B, T, C = x.shape
    D = cfg["hidden_size"] // cfg["num_attention_heads"]
    eps = cfg.get("layer_norm_eps", 1e-5)
    l = 0
    while f"{prefix}.encoder.layers.{l}.self_attn.q_proj.weight" in W:
        p = f"{prefix}.encoder.layers.{l}."
        g = lambda n: W[p + n]
        h = layer_norm(x, g("layer_norm1.weight"), g("layer_norm1.bias"), eps)
        H = g("self_attn.q_proj.weight").shape[0] // D
        q = (h @ g("self_attn.q_proj.weight").T + g("self_attn.q_proj.bias")).view(B, T, H, D).transpose(1, 2)
        k = (h @ g("self_attn.k_proj.weight").T + g("self_attn.k_proj.bias")).view(B, T, H, D).transpose(1, 2)
        v = (h @ g("self_attn.v_proj.weight").T + g("self_attn.v_proj.bias")).view(B, T, H, D).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        if causal:
            s = s + torch.triu(torch.full((T, T), float("-inf"), dtype=s.dtype), diagonal=1)
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, T, H * D)
        x = x + a @ g("self_attn.out_proj.weight").T + g("self_attn.out_proj.bias")
        h = layer_norm(x, g("layer_norm2.weight"), g("layer_norm2.bias"), eps)
        h = act(h @ g("mlp.fc1.weight").T + g("mlp.fc1.bias"), cfg.get("hidden_act", "quick_gelu"))
        x = x + h @ g("mlp.fc2.weight").T + g("mlp.fc2.bias")
        l += 1
    return x


def main():
    model_dir, pixels_path, ids_path, out_img, out_txt = sys.argv[1:6]
    torch.set_default_dtype(torch.float64)
    cfg = json.load(open(f"{model_dir}/config.json"))
    W = {k: v.double() if v.is_floating_point() else v for k, v in read_safetensors(f"{model_dir}/model.safetensors").items()}
    vc, tc = cfg["vision_config"], cfg["text_config"]

    pixels = torch.from_numpy(np.load(pixels_path)).double()
    B = pixels.shape[0]
    if B > 0:
        P = vc["patch_size"]
        conv = torch.nn.functional.conv2d(pixels, W["vision_model.embeddings.patch_embedding.weight"], stride=P)
        x = conv.flatten(2).transpose(1, 2)  # [B, N, C]
        cls = W["vision_model.embeddings.class_embedding"].expand(B, 1, -1)
        x = torch.cat([cls, x], dim=1) + W["vision_model.embeddings.position_embedding.weight"]
        eps = vc.get("layer_norm_eps", 1e-5)
        x = layer_norm(x, W["vision_model.pre_layrnorm.weight"], W["vision_model.pre_layrnorm.bias"], eps)
        x = encoder(x, W, "vision_model", vc, False)
        pooled = layer_norm(x[:, 0], W["vision_model.post_layernorm.weight"], W["vision_model.post_layernorm.bias"], eps)
        img = pooled @ W["visual_projection.weight"].T
        np.save(out_img, img.float().numpy())

    ids = torch.tensor(json.load(open(ids_path))["ids"], dtype=torch.long)
    if ids.numel() > 0:
        Bt, T = ids.shape
        x = W["text_model.embeddings.token_embedding.weight"][ids] + W["text_model.embeddings.position_embedding.weight"][:T]
        x = encoder(x, W, "text_model", tc, True)
        x = layer_norm(x, W["text_model.final_layer_norm.weight"], W["text_model.final_layer_norm.bias"], tc.get("layer_norm_eps", 1e-5))
        eos = tc.get("eos_token_id", 2)
        if eos == 2:
            pos = ids.argmax(dim=-1)
        else:
            pos = (ids == eos).int().argmax(dim=-1)
        txt = x[torch.arange(Bt), pos] @ W["text_projection.weight"].T
        np.save(out_txt, txt.float().numpy())


if __name__ == "__main__":
    main()
