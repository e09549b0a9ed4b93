#!/usr/bin/python3
"""Dynamic int8 quantisation of an ONNX graph, as onnxruntime's
quantize_dynamic does it (onnxruntime.quantization is a Python package that
is not available here: no PyPI; Debian has only python3-onnx). Every MatMul
whose second input is a constant float32 matrix W [K, N] becomes

  x_q, x_scale, x_zp = DynamicQuantizeLinear(x)        uint8, per tensor, asymmetric
  y_i = MatMulInteger(x_q, W_q, x_zp, W_zp)            int32
  y   = Mul(Cast(y_i, float), Mul(x_scale, W_scale))

with W quantised symmetrically to int8 (zero point 0), per tensor like
quantize_dynamic's default (--per-channel: per output column, like its
per_channel=True). ONNX Runtime fuses this pattern into its
DynamicQuantizeMatMul / MatMulIntegerToFloat kernels at the "all"
optimisation level, which is what a user of quantize_dynamic(model,
op_types_to_quantize=["MatMul"]) runs. Convolutions (the patch embedding)
and the attention products between activations stay float32, as there.

usage: quantize_onnx.py IN_DIR OUT_DIR [--per-channel]   (image.onnx, text.onnx)
Needs python3-onnx and numpy (/usr/bin/python3).
"""
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def quantize(model, per_channel):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes, n_q = [], 0
    for node in g.node:
        w = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if w is None or w.data_type != TensorProto.FLOAT or len(w.dims) != 2:
            nodes.append(node)
            continue
        W = numpy_helper.to_array(w)
        m = np.abs(W).max(axis=0) if per_channel else np.abs(W).max()
        scale = np.where(m > 0, m / 127.0, 1.0).astype(np.float32)
        Wq = np.clip(np.rint(W / scale), -127, 127).astype(np.int8)
        p = f"{node.name or node.output[0]}_q{n_q}"
        n_q += 1
        g.initializer.extend([
            numpy_helper.from_array(Wq, p + "_W"),
            numpy_helper.from_array(np.asarray(scale, np.float32), p + "_Wscale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), p + "_Wzp"),
        ])
        x = node.input[0]
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [x], [p + "_xq", p + "_xs", p + "_xzp"], name=p + "_dql"),
            helper.make_node("MatMulInteger", [p + "_xq", p + "_W", p + "_xzp", p + "_Wzp"], [p + "_yi"], name=p + "_mmi"),
            helper.make_node("Cast", [p + "_yi"], [p + "_yf"], to=TensorProto.FLOAT, name=p + "_cast"),
            helper.make_node("Mul", [p + "_xs", p + "_Wscale"], [p + "_s"], name=p + "_smul"),
            helper.make_node("Mul", [p + "_yf", p + "_s"], [node.output[0]], name=p + "_ymul"),
        ]
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return n_q


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    per_channel = "--per-channel" in sys.argv[3:]
    os.makedirs(dst, exist_ok=True)
    for name in ("image.onnx", "text.onnx"):
        m = onnx.load(os.path.join(src, name))
        n = quantize(m, per_channel)
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(dst, name))
        print(f"{name}: {n} MatMuls quantised to int8 ({'per channel' if per_channel else 'per tensor'})")


if __name__ == "__main__":
    main()
