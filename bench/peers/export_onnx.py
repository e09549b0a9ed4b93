#!/usr/bin/python3
"""Export a mopeclip (Hugging Face layout) CLIP checkpoint to ONNX, one graph
per tower, through a plain PyTorch module with the math of
clip/testdata/torch_clip.py (pruned models included: per-layer head counts
and MLP widths are read from the weight shapes, a missing attention or MLP
branch is skipped).

  image.onnx: pixels float32 [B,3,S,S]             -> image_embeds [B,E]
  text.onnx:  ids int64 [B,T], eot int64 [B]       -> text_embeds [B,E]

Both have a dynamic batch axis (text also a dynamic T), opset 17. It also
writes sample.json: a fixed input (batch 2) and the PyTorch outputs for it,
which run_ort.js checks ONNX Runtime against.

usage: export_onnx.py MODEL_DIR OUT_DIR
Needs Debian's python3-torch and python3-onnx (/usr/bin/python3).
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clip", "testdata"))
from torch_clip import read_safetensors  # noqa: E402


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


class Layer(torch.nn.Module):
    def __init__(self, W, p, C, D, eps, act, causal):
        super().__init__()
        P = lambda n: torch.nn.Parameter(W[p + n], requires_grad=False)  # noqa: E731
        self.eps, self.D, self.causal, self.C = eps, D, causal, C
        self.act = gelu if act == "gelu" else quick_gelu
        self.ln1 = (P("layer_norm1.weight"), P("layer_norm1.bias"))
        self.ln2 = (P("layer_norm2.weight"), P("layer_norm2.bias"))
        for i, t in enumerate(self.ln1 + self.ln2):
            self.register_parameter(f"lnp{i}", t)
        self.attn = (p + "self_attn.q_proj.weight") in W and W[p + "self_attn.q_proj.weight"].shape[0] > 0
        self.mlp = (p + "mlp.fc1.weight") in W and W[p + "mlp.fc1.weight"].shape[0] > 0
        if self.attn:
            self.H = W[p + "self_attn.q_proj.weight"].shape[0] // D
            self.q = torch.nn.Linear(C, self.H * D)
            self.k = torch.nn.Linear(C, self.H * D)
            self.v = torch.nn.Linear(C, self.H * D)
            self.o = torch.nn.Linear(self.H * D, C)
            for lin, n in ((self.q, "q_proj"), (self.k, "k_proj"), (self.v, "v_proj"), (self.o, "out_proj")):
                lin.weight.data.copy_(W[p + f"self_attn.{n}.weight"])
                lin.bias.data.copy_(W[p + f"self_attn.{n}.bias"])
        if self.mlp:
            F = W[p + "mlp.fc1.weight"].shape[0]
            self.fc1, self.fc2 = torch.nn.Linear(C, F), torch.nn.Linear(F, C)
            for lin, n in ((self.fc1, "fc1"), (self.fc2, "fc2")):
                lin.weight.data.copy_(W[p + f"mlp.{n}.weight"])
                lin.bias.data.copy_(W[p + f"mlp.{n}.bias"])

    def forward(self, x):
        B, T, C = x.shape[0], x.shape[1], self.C
        if self.attn:
            h = torch.nn.functional.layer_norm(x, (C,), self.ln1[0], self.ln1[1], self.eps)
            H, D = self.H, self.D
            q = self.q(h).view(B, T, H, D).transpose(1, 2)
            k = self.k(h).view(B, T, H, D).transpose(1, 2)
            v = self.v(h).view(B, T, H, D).transpose(1, 2)
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
            if self.causal:
                mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
                s = s + mask
            a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H * D)
            x = x + self.o(a)
        if self.mlp:
            h = torch.nn.functional.layer_norm(x, (C,), self.ln2[0], self.ln2[1], self.eps)
            x = x + self.fc2(self.act(self.fc1(h)))
        return x


def layers(W, prefix, cfg, causal):
    C = cfg["hidden_size"]
    D = C // cfg["num_attention_heads"]
    eps = cfg.get("layer_norm_eps", 1e-5)
    out = []
    l = 0
    while f"{prefix}.encoder.layers.{l}.layer_norm1.weight" in W:
        out.append(Layer(W, f"{prefix}.encoder.layers.{l}.", C, D, eps, cfg.get("hidden_act", "quick_gelu"), causal))
        l += 1
    return torch.nn.ModuleList(out)


class Image(torch.nn.Module):
    def __init__(self, W, vc):
        super().__init__()
        P = lambda n: torch.nn.Parameter(W[n], requires_grad=False)  # noqa: E731
        self.patch = vc["patch_size"]
        self.C = vc["hidden_size"]
        self.eps = vc.get("layer_norm_eps", 1e-5)
        self.conv_w = P("vision_model.embeddings.patch_embedding.weight")
        self.cls = P("vision_model.embeddings.class_embedding")
        self.pos = P("vision_model.embeddings.position_embedding.weight")
        self.pre = (P("vision_model.pre_layrnorm.weight"), P("vision_model.pre_layrnorm.bias"))
        self.post = (P("vision_model.post_layernorm.weight"), P("vision_model.post_layernorm.bias"))
        for i, t in enumerate(self.pre + self.post):
            self.register_parameter(f"lnp{i}", t)
        self.proj = P("visual_projection.weight")
        self.layers = layers(W, "vision_model", vc, False)

    def forward(self, pixels):
        B = pixels.shape[0]
        x = torch.nn.functional.conv2d(pixels, self.conv_w, stride=self.patch).flatten(2).transpose(1, 2)
        C = self.C
        x = torch.cat([self.cls.reshape(1, 1, C).expand(B, -1, -1), x], dim=1) + self.pos
        x = torch.nn.functional.layer_norm(x, (C,), self.pre[0], self.pre[1], self.eps)
        for l in self.layers:
            x = l(x)
        pooled = torch.nn.functional.layer_norm(x[:, 0], (C,), self.post[0], self.post[1], self.eps)
        return pooled @ self.proj.t()


class Text(torch.nn.Module):
    def __init__(self, W, tc):
        super().__init__()
        P = lambda n: torch.nn.Parameter(W[n], requires_grad=False)  # noqa: E731
        self.eps = tc.get("layer_norm_eps", 1e-5)
        self.C = tc["hidden_size"]
        self.tok = P("text_model.embeddings.token_embedding.weight")
        self.pos = P("text_model.embeddings.position_embedding.weight")
        self.fin = (P("text_model.final_layer_norm.weight"), P("text_model.final_layer_norm.bias"))
        for i, t in enumerate(self.fin):
            self.register_parameter(f"lnp{i}", t)
        self.proj = P("text_projection.weight")
        self.layers = layers(W, "text_model", tc, True)

    def forward(self, ids, eot):
        B, T = ids.shape
        x = self.tok[ids] + self.pos[:T]
        for l in self.layers:
            x = l(x)
        C = self.C
        pooled = x[torch.arange(B), eot]
        pooled = torch.nn.functional.layer_norm(pooled, (C,), self.fin[0], self.fin[1], self.eps)
        return pooled @ self.proj.t()


def main():
    model_dir, out_dir = sys.argv[1:3]
    os.makedirs(out_dir, exist_ok=True)
    cfg = json.load(open(f"{model_dir}/config.json"))
    W = read_safetensors(f"{model_dir}/model.safetensors")
    vc, tc = cfg["vision_config"], cfg["text_config"]
    img, txt = Image(W, vc).eval(), Text(W, tc).eval()
    S, T = vc["image_size"], tc["max_position_embeddings"]
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 3, S, S, generator=g)
    ids = torch.randint(1, 49000, (2, T), generator=g)
    eot = torch.tensor([T - 1, T // 2])
    with torch.no_grad():
        torch.onnx.export(img, (pixels,), f"{out_dir}/image.onnx", input_names=["pixels"], output_names=["image_embeds"],
                          dynamic_axes={"pixels": {0: "B"}, "image_embeds": {0: "B"}}, opset_version=17)
        torch.onnx.export(txt, (ids, eot), f"{out_dir}/text.onnx", input_names=["ids", "eot"], output_names=["text_embeds"],
                          dynamic_axes={"ids": {0: "B", 1: "T"}, "eot": {0: "B"}, "text_embeds": {0: "B"}}, opset_version=17)
        oi, ot = img(pixels), txt(ids, eot)
    json.dump({"pixels": pixels.flatten().tolist(), "pixels_shape": list(pixels.shape),
               "ids": ids.flatten().tolist(), "ids_shape": list(ids.shape), "eot": eot.tolist(),
               "image_embeds": oi.flatten().tolist(), "text_embeds": ot.flatten().tolist(),
               "image_size": S, "context": T}, open(f"{out_dir}/sample.json", "w"))
    print(f"exported {out_dir}/image.onnx and text.onnx ({len(img.layers)} + {len(txt.layers)} layers)")


if __name__ == "__main__":
    main()
