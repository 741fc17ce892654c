#!/usr/bin/python3
"""The onnx package as an independent oracle for the TypeScript ONNX toolkit's tests.

  check MODEL        onnx.checker (full) + shape inference; prints JSON {ok, opset, max_rank, ops}
  make MODEL         writes a model exercising many field kinds, one initializer as external data beside it
  equal A B          exits 0 when the two files parse to equal ModelProtos (field order may differ)
  externalize IN OUT writes IN again with every initializer over 1 KiB in OUT's data file OUT.data
  dump MODEL         prints JSON of graph inputs/outputs/initializer names and node op types
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def check(path):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    ranks = [len(v.type.tensor_type.shape.dim) for v in inferred.graph.value_info]
    print(json.dumps({
        "ok": True,
        "opset": [[o.domain, o.version] for o in m.opset_import],
        "max_rank": max(ranks) if ranks else 0,
        "ops": sorted({n.op_type for n in m.graph.node}),
    }))


def make(path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    big = np.linspace(-1, 1, 4096, dtype=np.float32).reshape(64, 64)
    inits = [
        numpy_helper.from_array(w, "w"),
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 4]),  # negative int64 in int64_data
        helper.make_tensor("fd", TensorProto.FLOAT, [2], [1.5, -2.25]),  # float_data, not raw
        helper.make_tensor("dd", TensorProto.DOUBLE, [2], [1e-300, 3.0]),
        helper.make_tensor("big64", TensorProto.INT64, [1], [2**60 + 1]),  # beyond 2^53
        numpy_helper.from_array(big, "ext"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [64, 64])
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"], name="mm"),
        helper.make_node("Reshape", ["xw", "shape"], ["r"], name="rs"),
        helper.make_node("LeakyRelu", ["r"], ["y"], name="lr", alpha=0.125),
        helper.make_node("Transpose", ["ext"], ["z"], name="tp", perm=[1, 0]),
    ]
    g = helper.make_graph(nodes, "g", [x], [y, z], inits, doc_string="docs ✓")
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnx_tool")
    helper.set_model_props(m, {"k": "v"})
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=1024)


def equal(a, b):
    ma, mb = onnx.load(a, load_external_data=False), onnx.load(b, load_external_data=False)
    sys.exit(0 if ma == mb else 1)


def externalize(src, out):
    import os
    m = onnx.load(src)
    onnx.save_model(m, out, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=os.path.basename(out) + ".data", size_threshold=1024)


def dump(path):
    m = onnx.load(path, load_external_data=False)
    print(json.dumps({
        "inputs": [v.name for v in m.graph.input],
        "outputs": [v.name for v in m.graph.output],
        "initializers": [t.name for t in m.graph.initializer],
        "ops": [n.op_type for n in m.graph.node],
    }))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"check": check, "make": make, "equal": equal, "dump": dump, "externalize": externalize}[cmd](*args)
