"""Builds the labelled prompt set for the classifier's built-in labels.

Reads only packages from PyPI (pinned in train.sh): evals (jsonl sets under
evals/registry/data/), bigbench (task.json files of the sdist) and
reasoning-gym (codeio.jsonl.gz). Standard library only.

Every example becomes a prompt as a user would send it: for evals sets the
system messages and the last user message are kept apart (the classifier
sees them through its window); for bigbench the task's own prefixes are
applied. SOURCES below says which set feeds which label and how many
examples it may give. Examples are deduplicated on normalised text; the
split is fixed by a hash of that text (70% train, 15% validation, 15% test),
so adding a source never moves an existing example between splits.

usage: build_dataset.py <evals.whl> <bigbench.tar.gz> <reasoning_gym.whl> <out.jsonl>
"""

import gzip
import hashlib
import io
import json
import random
import re
import sys
import tarfile
import zipfile

# label -> [(package, set, cap, how)]
SOURCES = {
    "code": [
        ("evals", "sql/spider_sql.jsonl", 120, "messages"),
        ("evals", "regex-match", 60, "messages"),
        ("evals", "python_list_comprehension", 60, "messages"),
        ("evals", "formal-grammar-to-regex", 60, "messages"),
        ("evals", "css-selectors", 60, "messages"),
        ("evals", "syntax-check", 60, "messages"),
        ("bigbench", "code_line_description", 60, "prefixed"),
        ("bigbench", "auto_debugging", 40, "prefixed"),
        ("bigbench", "semantic_parsing_spider", 120, "prefixed"),
        ("reasoning_gym", "codeio", 120, "codeio"),
        ("reasoning_gym", "codeio", 160, "templated_code"),
    ],
    "math": [
        ("evals", "simple_math", 60, "messages"),
        ("evals", "math_equations", 60, "messages"),
        ("evals", "multistep-word-problems", 40, "messages"),
        ("evals", "math-derivatives", 60, "messages"),
        ("evals", "probability_questions", 60, "messages"),
        ("evals", "jee-math", 40, "messages"),
        ("evals", "logic-riddles", 50, "messages"),
        ("evals", "logiqa", 60, "messages"),
        ("bigbench", "elementary_math_qa/question_only", 160, "prefixed"),
        ("bigbench", "arithmetic/2_digit_multiplication", 30, "prefixed"),
        ("bigbench", "arithmetic/3_digit_division", 30, "prefixed"),
        ("bigbench", "chinese_remainder_theorem", 60, "prefixed"),
    ],
    "summarize": [
        ("bigbench", "gem/xsum", 180, "prefixed"),
        ("bigbench", "gem/wikilingua_en", 180, "prefixed"),
        ("evals", "consensus_summary", 120, "messages"),
        ("bigbench", "gem/xsum", 200, "templated_summarize"),
    ],
    "extract": [
        ("evals", "ner_finance", 120, "messages"),
        ("evals", "product-ie", 120, "messages"),
        ("evals", "resource_id_extraction", 80, "messages"),
        ("evals", "population_span_extraction", 80, "messages"),
        ("evals", "research-question-extraction", 40, "messages"),
        ("evals", "utility_price_parsing", 80, "messages"),
        ("evals", "invoices", 80, "messages"),
        ("bigbench", "gem/wikilingua_en", 200, "templated_extract"),
    ],
    "translate": [
        ("evals", "chinese_hard_translations", 120, "messages"),
        ("evals", "belarusian_russian_translation", 80, "messages"),
        ("evals", "manga-translation", 120, "messages"),
        ("evals", "iqbal-poetry-translation", 80, "messages"),
        ("evals", "sindarin_fluency", 80, "messages"),
        ("evals", "japanese_approval", 80, "messages"),
        ("bigbench", "conlang_translation", 200, "prefixed"),
        ("bigbench", "gem/xsum", 160, "templated_translate"),
    ],
    "creative": [
        ("bigbench", "natural_instructions/subtask059_ropes_story_generation", 200, "story"),
        ("bigbench", "gem/common_gen", 160, "concepts"),
        ("evals", "unwanted-rhyming", 15, "messages"),
        ("bigbench", "gem/common_gen", 300, "templated_creative"),
    ],
    "chat": [
        ("bigbench", "topical_chat", 300, "last_turn"),
        ("bigbench", "intent_recognition", 200, "utterance"),
        ("bigbench", "gem/schema_guided_dialog", 200, "user_quote"),
    ],
}

# Requests phrased the way people type them are scarce in these packages
# (bigbench writes "summarize: <article>"). These instructions, filled with
# the packages' own content (xsum/wikilingua articles, codeio code and task
# descriptions, common_gen concept sets), add them; the same articles appear
# under summarize, extract and translate, so only the instruction tells the
# labels apart. Tagged `templated` so the report can leave them out.
SUMMARIZE_FORMS = [
    "Summarize the following article in {n} sentences: {doc}",
    "TL;DR this for me:\n{doc}",
    "Give me a brief summary of this text.\n\n{doc}",
    "Can you condense this into a few bullet points?\n{doc}",
    "{doc}\n\nSummarize the above in one paragraph.",
    "Write an executive summary of the following report: {doc}",
    "What are the key points of this article? {doc}",
    "Please shorten this to a two-line abstract: {doc}",
]
EXTRACT_FORMS = [
    "Extract all person names mentioned in this text as a JSON list: {doc}",
    "List every date and place that appears in the following article: {doc}",
    "Pull out the company names and amounts of money from this text: {doc}",
    "From the article below, extract the people, organisations and locations.\n{doc}",
    "Find all the numbers in this passage and return them with their units: {doc}",
    "Return a JSON object with the fields who, what, when and where for this news item: {doc}",
]
TRANSLATE_FORMS = [
    "Translate the following into French: {doc}",
    "How do you say this in Spanish? {doc}",
    "Please translate to German: {doc}",
    "Translate this paragraph into Japanese:\n{doc}",
    "Render the following text in Italian: {doc}",
    "{doc}\n\nTranslate the above into Portuguese.",
]
CODE_FORMS = [
    "Implement this in Python: {desc}",
    "Write a JavaScript function for the following task. {desc}",
    "Fix the bug in this code:\n{code}",
    "Refactor this function to be more readable:\n{code}",
    "Add unit tests for the following code:\n{code}",
    "Explain what this code does, line by line:\n{code}",
    "Port this Python code to Rust:\n{code}",
]
# Creative requests are scarce in these packages; these forms, filled with
# the concept sets of gem/common_gen, stand in for them.
CREATIVE_FORMS = [
    "Write a short story about {t}.",
    "Write a poem about {t}.",
    "Compose a haiku about {t}.",
    "Write a limerick featuring {t}.",
    "Write song lyrics about {t}.",
    "Write a bedtime fairy tale involving {t}.",
    "Write a funny tweet about {t}.",
    "Draft the opening paragraph of a novel that involves {t}.",
    "Write a sonnet inspired by {t}.",
    "Invent a dialogue between two characters about {t}.",
    "Come up with a catchy slogan for {t}.",
    "Write a creative product description for {t}.",
]


def norm(text):
    return re.sub(r"\s+", " ", text).strip().lower()


def split_of(text):
    h = int(hashlib.sha256(norm(text).encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else "validation" if h < 85 else "test"


def evals_rows(wheel, path):
    prefix = "evals/registry/data/" + path
    for name in sorted(wheel.namelist()):
        if not name.startswith(prefix) or not name.endswith(".jsonl"):
            continue
        for line in wheel.read(name).decode("utf-8", "replace").splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue


def messages(sample):
    msgs = sample.get("input")
    if isinstance(msgs, str):
        return None, msgs
    if not isinstance(msgs, list) or not msgs:
        return None
    system = "\n".join(m.get("content", "") for m in msgs if m.get("role") == "system" and isinstance(m.get("content"), str))
    users = [m.get("content") for m in msgs if m.get("role") == "user" and isinstance(m.get("content"), str)]
    if users:
        return (system or None), users[-1]
    # Instruction-only samples: the system message is the request.
    return None, system


def bigbench_task(tar, members, task):
    name = f"bigbench-1.0.0/bigbench/benchmark_tasks/{task}/task.json"
    out = []
    if name in members:
        out.append(json.load(tar.extractfile(members[name])))
    if not any(d.get("examples") for d in out):
        # A task folder of subtasks (conlang_translation/*).
        sub = sorted(n for n in members if n.startswith(f"bigbench-1.0.0/bigbench/benchmark_tasks/{task}/") and n.endswith("/task.json"))
        out.extend(json.load(tar.extractfile(members[n])) for n in sub)
    return out


def bigbench_rows(tar, members, task, how):
    for d in bigbench_task(tar, members, task):
        task_prefix = d.get("task_prefix", "")
        input_prefix = d.get("example_input_prefix", "")
        for ex in d.get("examples", []):
            text = ex.get("input", "")
            if not isinstance(text, str):
                continue
            if how == "prefixed":
                yield (task_prefix + input_prefix + text).strip()
            elif how == "raw":
                yield text
            elif how == "story":
                yield f"{text.strip()}\n\nWrite a story regarding the background paragraph above."
            elif how == "concepts":
                yield "Write a sentence that uses all of these concepts: " + ", ".join(text.split())
            elif how == "templated_creative":
                yield text
            elif how == "last_turn":
                last = text.strip().splitlines()[-1]
                yield re.sub(r'^agent_[AB]:\s*"?|"$', "", last)
            elif how == "utterance":
                yield re.sub(r"^Utterance:\s*", "", text.strip())
            elif how == "user_quote":
                quotes = re.findall(r'user: "([^"]+)"', text)
                if quotes:
                    yield quotes[-1]


def excerpt(text, limit):
    """The first sentences of `text`, at most `limit` characters."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(". ", 0, limit)
    return text[: cut + 1] if cut > limit // 3 else text[:limit]


def templated(texts, forms, how, seed):
    rng = random.Random(seed)
    out = []
    for t in texts:
        form = rng.choice(forms)
        if how == "templated_translate":
            doc = excerpt(t, rng.choice([80, 160, 240]))
        else:
            doc = excerpt(t, rng.choice([300, 600, 1200]))
        out.append(form.format(doc=doc, n=rng.choice([2, 3, 5])))
    return out


def codeio_records(wheel):
    with gzip.open(io.BytesIO(wheel.read("reasoning_gym/data/codeio.jsonl.gz"))) as f:
        for line in f:
            yield json.loads(line)


def templated_code(wheel):
    rng = random.Random(5)
    for d in codeio_records(wheel):
        form = rng.choice(CODE_FORMS)
        code = d["code_sample"].split("\n")
        yield form.format(desc=d["task_description"], code="\n".join(code[: rng.choice([8, 16, 30])]))


def codeio_rows(wheel):
    with gzip.open(io.BytesIO(wheel.read("reasoning_gym/data/codeio.jsonl.gz"))) as f:
        for line in f:
            d = json.loads(line)
            yield (
                "You are given a question that requires some input and output variables as follows:\n\n"
                f"{d['task_description']}\n\n{d['input_output_spec']}\n\n"
                f"Given the following reference code, predict the output.\n\n{d['code_sample']}"
            )


def main():
    evals_path, bigbench_path, gym_path, out_path = sys.argv[1:5]
    evals = zipfile.ZipFile(evals_path)
    gym = zipfile.ZipFile(gym_path)
    tar = tarfile.open(bigbench_path)
    members = {m.name: m for m in tar.getmembers() if m.name.endswith("task.json")}
    seen = set()
    rows = []
    counts = {}
    for label, sources in SOURCES.items():
        for package, name, cap, how in sources:
            candidates = []
            if package == "evals":
                for sample in evals_rows(evals, name):
                    pair = messages(sample)
                    if pair and pair[1] and pair[1].strip():
                        candidates.append((pair[0], pair[1]))
            elif package == "reasoning_gym" and how == "templated_code":
                candidates = [(None, t) for t in templated_code(gym)]
            elif package == "reasoning_gym":
                candidates = [(None, t) for t in codeio_rows(gym)]
            elif how in ("templated_summarize", "templated_extract", "templated_translate"):
                articles = list(bigbench_rows(tar, members, name, "raw"))
                forms = {
                    "templated_summarize": SUMMARIZE_FORMS,
                    "templated_extract": EXTRACT_FORMS,
                    "templated_translate": TRANSLATE_FORMS,
                }[how]
                candidates = [(None, t) for t in templated(articles, forms, how, how)]
            else:
                texts = list(bigbench_rows(tar, members, name, how))
                if how == "templated_creative":
                    rng = random.Random(11)
                    texts = [
                        rng.choice(CREATIVE_FORMS).format(t=", ".join(c.split()[:3]))
                        for c in texts
                    ]
                candidates = [(None, t) for t in texts if t.strip()]
            # A fixed shuffle, so the cap takes a spread of each set.
            random.Random(name + how).shuffle(candidates)
            taken = 0
            for system, text in candidates:
                if taken >= cap:
                    break
                key = norm((system or "") + "\n" + text)
                if key in seen:
                    continue
                seen.add(key)
                source = f"{package}:{name}" + (":templated" if how.startswith("templated") else "")
                rows.append(
                    {
                        "text": text,
                        "system": system,
                        "label": label,
                        "source": source,
                        "split": split_of(key),
                    }
                )
                taken += 1
            counts[f"{label} <- {package}:{name} ({how})"] = taken
    with open(out_path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    for k, v in counts.items():
        print(f"{v:5d}  {k}", file=sys.stderr)
    print(f"{len(rows)} examples", file=sys.stderr)


if __name__ == "__main__":
    main()
