"""Fine-tunes the top of the encoder for the built-in labels (LoRA).

A linear head over a frozen sentence encoder learns labels from vectors
made for *topic* similarity: a pasted article about rivers looks like
rivers whatever the request around it says. Fine-tuning the top layers
lets the encoder weigh the request itself. Low-rank adapters (LoRA) keep
the change small and the base weights untouched: the output is a few
hundred kilobytes (classifier/heads/encoder-delta.npz, committed), and
classifier/scripts/build_encoder.py merges it into the weights before it
writes the fused int8 graph, so nothing large is committed and the encoder
is rebuilt from the pinned package plus this file.

A second objective keeps each prompt's mean vector where the base model
puts it (KEEP below): operator routes compare mean vectors with thresholds
set in the base model's space; the label signal goes to the end segments.

Trains on the `train` split of build_dataset.py's output only, through the
engine's window (a port of classifier/src/window.rs) and pooling (mean plus
both end segments, classifier/src/pooling.rs), with the same doubling of
prompts with and without their system prompt. The evaluation families are
never read. The lower layers are frozen, so their output is computed once.

usage: finetune.py <model.safetensors> <tokenizer.json> <prompts.jsonl> <out.npz>
       finetune.py --leave-one-family-out <same> <out.jsonl>
The second form fine-tunes once per training family without it and writes
the held-out family's probabilities (tools/src/bin/train_classifier.rs
reads them for its leave-one-family-out table and thresholds).
Needs jax, optax, safetensors, tokenizers and numpy (train.sh pins them).
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from safetensors.numpy import load_file
from tokenizers import Tokenizer

LABELS = ["code", "math", "summarize", "extract", "translate", "creative", "chat"]
MAX_TOKENS, EDGE = 48, 8
LAYERS, TUNED, HEADS = 6, 3, 12
RANK, ALPHA = 8, 16.0
# Weight of keeping the mean vector where the base encoder puts it: operator
# routes compare mean vectors by cosine with thresholds set for the base
# model's space, and a label-tuned space would put every chat prompt near
# every support utterance. The label signal goes to the end segments.
KEEP = 4.0
EPOCHS, BATCH, LR, SEED = 3, 32, 1e-3, 0
MATRICES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "o": "attention.output.dense", "up": "intermediate.dense", "down": "output.dense",
}
# classifier/src/window.rs
USER_WHOLE, USER_HEAD, USER_TAIL, SYSTEM_HEAD = 176, 120, 48, 64


def window(system, user):
    user = user.strip()
    out = ""
    if system and system.strip():
        out = system.strip()[:SYSTEM_HEAD] + "\n"
    if len(user) <= USER_WHOLE:
        return out + user
    return out + user[:USER_HEAD] + " … " + user[-USER_TAIL:]


def layer_norm(x, g, b, eps=1e-12):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / jnp.sqrt(v + eps) * g + b


def layer(W, x, mask, i, lora=None):
    p = f"encoder.layer.{i}."

    def linear(h, short):
        out = h @ W[p + MATRICES[short] + ".weight"].T + W[p + MATRICES[short] + ".bias"]
        if lora is not None:
            a, b = lora[short]
            out = out + (h @ a.T) @ b.T * (ALPHA / RANK)
        return out

    n, t, d = x.shape
    split = lambda z: z.reshape(n, t, HEADS, d // HEADS).transpose(0, 2, 1, 3)
    q, k, v = split(linear(x, "q")), split(linear(x, "k")), split(linear(x, "v"))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // HEADS) + (1.0 - mask[:, None, None, :]) * -10000.0
    ctx = (jax.nn.softmax(s, -1) @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
    x = layer_norm(x + linear(ctx, "o"), W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"])
    h = jax.nn.gelu(linear(x, "up"), approximate=False)
    return layer_norm(x + linear(h, "down"), W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])


def pool(x, mask):
    """classifier/src/pooling.rs segment_pool: mean, first EDGE, last EDGE."""
    kept = mask.sum(1, keepdims=True)
    idx = jnp.arange(x.shape[1])[None, :]
    inner_end = jnp.maximum(kept - 1, 1)
    head = (idx >= 1) & (idx < jnp.minimum(inner_end, 1 + EDGE))
    tail = (idx < inner_end) & (idx >= jnp.maximum(inner_end - EDGE, 1))
    parts = []
    for m in (mask > 0, head, tail):
        m = m.astype(jnp.float32) * mask
        m = jnp.where(m.sum(1, keepdims=True) > 0, m, mask)
        v = (x * m[:, :, None]).sum(1) / m.sum(1)[:, None]
        parts.append(v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12))
    return jnp.concatenate(parts, 1)


class Tuner:
    """The frozen base, the trainable adapters and head, and their steps."""

    def __init__(self, weights_path, tokenizer_path):
        self.W = {k.replace("bert.", ""): jnp.asarray(v.astype(np.float32)) for k, v in load_file(weights_path).items()}
        self.tok = Tokenizer.from_file(tokenizer_path)
        self.tok.no_padding()
        self.tok.enable_truncation(MAX_TOKENS)
        W = self.W

        @jax.jit
        def frozen(ids, mask):
            t = ids.shape[1]
            x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:t][None]
            x = layer_norm(x + W["embeddings.token_type_embeddings.weight"][0], W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
            for i in range(LAYERS - TUNED):
                x = layer(W, x, mask, i)
            return x

        def features(params, x, mask):
            for j, i in enumerate(range(LAYERS - TUNED, LAYERS)):
                x = layer(W, x, mask, i, None if params is None else params["lora"][j])
            return pool(x, mask)

        def forward(params, x, mask):
            f = features(params, x, mask)
            return f @ params["w"] + params["b"], f[:, :384]

        self.frozen = frozen
        self.forward = forward
        self.base_mean = jax.jit(lambda x, mask: features(None, x, mask)[:, :384])
        self.predict = jax.jit(lambda params, x, mask: jax.nn.softmax(forward(params, x, mask)[0], -1))

    def lower(self, texts):
        """The frozen layers' output for `texts`, and their masks."""
        xs, masks = [], []
        for i in range(0, len(texts), 64):
            encs = self.tok.encode_batch(texts[i : i + 64])
            ids = np.zeros((len(encs), MAX_TOKENS), np.int32)
            mask = np.zeros((len(encs), MAX_TOKENS), np.float32)
            for j, e in enumerate(encs):
                ids[j, : len(e.ids)] = e.ids
                mask[j, : len(e.ids)] = 1
            xs.append(np.asarray(self.frozen(ids, mask)))
            masks.append(mask)
        return np.concatenate(xs), np.concatenate(masks)

    def base_means(self, X, M):
        """The base encoder's mean vectors, which training keeps."""
        return np.concatenate([np.asarray(self.base_mean(X[i : i + 256], M[i : i + 256])) for i in range(0, len(X), 256)])

    def train(self, X, M, Y, epochs, log):
        T = self.base_means(X, M)
        key = jax.random.PRNGKey(SEED)

        def adapters(key, i):
            out = {}
            for short, name in MATRICES.items():
                o, n = self.W[f"encoder.layer.{i}.{name}.weight"].shape
                key, sub = jax.random.split(key)
                out[short] = (jax.random.normal(sub, (RANK, n)) * 0.01, jnp.zeros((o, RANK)))
            return out

        params = {
            "lora": [adapters(jax.random.fold_in(key, i), i) for i in range(LAYERS - TUNED, LAYERS)],
            "w": jnp.zeros((3 * 384, len(LABELS))),
            "b": jnp.zeros(len(LABELS)),
        }

        def loss(params, x, mask, y, target):
            logits, mean = self.forward(params, x, mask)
            drift = 1.0 - (mean * target).sum(-1)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean() + KEEP * drift.mean()

        steps = epochs * (len(Y) // BATCH)
        opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, LR, steps // 10, steps), weight_decay=0.01)
        state = opt.init(params)

        @jax.jit
        def step(params, state, x, mask, y, target):
            value, grads = jax.value_and_grad(loss)(params, x, mask, y, target)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state, value

        rng = np.random.default_rng(SEED)
        for epoch in range(epochs):
            order = rng.permutation(len(Y))
            losses = []
            for s in range(len(Y) // BATCH):
                b = order[s * BATCH : (s + 1) * BATCH]
                params, state, value = step(params, state, X[b], M[b], Y[b], T[b])
                losses.append(float(value))
            log(f"epoch {epoch + 1}/{epochs}, loss {np.mean(losses):.4f}")
        return params


def training_set(rows):
    """Windows and labels of the training rows, each also without its
    system prompt when that differs (as the head's trainer does)."""
    texts = [window(r.get("system"), r["text"]) for r in rows]
    labels = [LABELS.index(r["label"]) for r in rows]
    for r in rows:
        alone = window(None, r["text"])
        if alone != window(r.get("system"), r["text"]):
            texts.append(alone)
            labels.append(LABELS.index(r["label"]))
    return texts, np.array(labels)


def main():
    args = sys.argv[1:]
    lofo = "--leave-one-family-out" in args
    weights_path, tokenizer_path, data_path, out_path = [a for a in args if not a.startswith("--")][:4]
    started = time.time()
    log = lambda m: print(f"finetune: {m} ({time.time() - started:.0f}s)", file=sys.stderr, flush=True)
    tuner = Tuner(weights_path, tokenizer_path)
    rows = [json.loads(line) for line in open(data_path, encoding="utf-8") if line.strip()]
    rows = [r for r in rows if r["split"] != "eval"]
    texts, Y = training_set([r for r in rows if r["split"] == "train"])
    X, M = tuner.lower(texts)
    log(f"{len(Y)} training prompts through the frozen layers")
    if not lofo:
        params = tuner.train(X, M, Y, EPOCHS, log)
        save(params, out_path)
        return
    # Leave one family out, the encoder included: fine-tune without a
    # family (one epoch, to keep this under half an hour) and score every
    # row of it. The trainer reports these and calibrates thresholds on them.
    train_rows = [r for r in rows if r["split"] == "train"]
    family_of = [r["family"] for r in train_rows]
    family_of += [r["family"] for r in train_rows if window(None, r["text"]) != window(r.get("system"), r["text"])]
    family_of = np.array(family_of)
    with open(out_path, "w") as out:
        for family in sorted({r["family"] for r in rows}):
            keep = family_of != family
            params = tuner.train(X[keep], M[keep], Y[keep], 1, lambda m: log(f"without {family}: {m}"))
            held = [r for r in rows if r["family"] == family]
            hx, hm = tuner.lower([window(r.get("system"), r["text"]) for r in held])
            probs = np.concatenate([np.asarray(tuner.predict(params, hx[i : i + 256], hm[i : i + 256])) for i in range(0, len(held), 256)])
            right = sum(int(p.argmax() == LABELS.index(r["label"])) for p, r in zip(probs, held))
            log(f"without {family}: {right}/{len(held)} right")
            for r, p in zip(held, probs):
                out.write(json.dumps({"family": family, "label": r["label"], "probabilities": [round(float(x), 5) for x in p]}) + "\n")


def save(params, out_path):
    delta = {"alpha": np.array(ALPHA / RANK, np.float32)}
    for j, i in enumerate(range(LAYERS - TUNED, LAYERS)):
        for short, name in MATRICES.items():
            a, b = params["lora"][j][short]
            delta[f"encoder.layer.{i}.{name}.lora_a"] = np.asarray(a, np.float16)
            delta[f"encoder.layer.{i}.{name}.lora_b"] = np.asarray(b, np.float16)
    with open(out_path, "wb") as f:
        np.savez_compressed(f, **delta)


if __name__ == "__main__":
    main()
