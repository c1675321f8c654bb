"""Builds the labelled prompt set for the classifier's built-in labels.

Reads only packages from PyPI (pinned in train.sh). Training families, each
a different author's style, so that no label is learnt from one package:
- evals: jsonl sets under evals/registry/data/ (system and last user
  message kept apart; the classifier sees them through its window);
- bigbench: task.json files of the sdist, with the task's own prefixes;
- reasoning-gym: codeio.jsonl.gz;
- icalfa: NL2Bash requests (code asked for in plain English);
- promptsource: the instruction templates its contributors wrote for
  public data sets (promptsource_forms.py), filled with articles above;
- switchyard-forms: everyday phrasings with hard negatives (forms.py),
  filled with the packages' own content.
Evaluation families, never trained on (eval_sets.py): `handwritten` and
`registry` (packages no training row comes from); split "eval".

Examples are deduplicated on normalised text, and a training row equal to
an evaluation prompt is dropped. The split of a training row is fixed by a
hash of its text (70% train, 15% validation, 15% test), so adding a source
never moves an existing example between splits.

usage: build_dataset.py --evals W --bigbench T --gym W --icalfa W
       --promptsource T --eval-packages DIR --handwritten F --out F
"""

import argparse
import gzip
import hashlib
import io
import json
import random
import re
import sys
import tarfile
import zipfile

import eval_sets
import forms
import promptsource_forms

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
        ("icalfa", "nl2bash", 200, "nl2bash"),
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
        ("bigbench", "physics_questions", 50, "raw"),
    ],
    "summarize": [
        ("bigbench", "gem/xsum", 180, "prefixed"),
        ("bigbench", "gem/wikilingua_en", 180, "prefixed"),
        ("evals", "consensus_summary", 120, "messages"),
    ],
    "extract": [
        ("evals", "ner_finance", 120, "messages"),
        ("evals", "product-ie", 120, "messages"),
        ("evals", "resource_id_extraction", 80, "messages"),
        ("evals", "population_span_extraction", 80, "messages"),
        ("evals", "research-question-extraction", 40, "messages"),
        ("evals", "utility_price_parsing", 80, "messages"),
        ("evals", "invoices", 80, "messages"),
    ],
    "translate": [
        ("evals", "chinese_hard_translations", 120, "messages"),
        ("evals", "belarusian_russian_translation", 80, "messages"),
        ("evals", "manga-translation", 120, "messages"),
        ("evals", "iqbal-poetry-translation", 80, "messages"),
        ("evals", "sindarin_fluency", 80, "messages"),
        ("evals", "japanese_approval", 80, "messages"),
        ("bigbench", "conlang_translation", 200, "prefixed"),
    ],
    "creative": [
        ("bigbench", "natural_instructions/subtask059_ropes_story_generation", 200, "story"),
        ("bigbench", "gem/common_gen", 160, "concepts"),
        ("evals", "unwanted-rhyming", 15, "messages"),
    ],
    "chat": [
        ("bigbench", "topical_chat", 300, "last_turn"),
        ("bigbench", "intent_recognition", 200, "utterance"),
        ("bigbench", "gem/schema_guided_dialog", 200, "user_quote"),
        ("bigbench", "known_unknowns", 46, "raw"),
        ("bigbench", "strategyqa", 120, "raw"),
    ],
}

# Form families: label -> [(what, cap)]; see forms.py and promptsource_forms.py.
FORM_CAPS = {
    "summarize": [("articles", 320), ("dialogues", 60), ("promptsource", 300)],
    "extract": [("articles", 240), ("records", 72), ("promptsource", 300)],
    "translate": [("to", 240), ("from", 80)],
    "code": [("with_code", 160), ("requests", 260), ("agent", 60)],
    "math": [("forms", 160), ("promptsource", 100)],
    "creative": [("forms", 300), ("from_text", 150)],
    "chat": [("forms", 120)],
}

# Questions a reader asks of a passage, for promptsource's reading templates.
PASSAGE_QUESTIONS = [
    "Who is mentioned first?", "When did this happen?", "Where did the events take place?",
    "How many people were involved?", "What was the result?", "Which organisation is responsible?",
    "What reason is given for the decision?", "Who made the announcement?",
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


def codeio_records(wheel):
    with gzip.open(io.BytesIO(wheel.read("reasoning_gym/data/codeio.jsonl.gz"))) as f:
        for line in f:
            yield json.loads(line)


def codeio_rows(wheel):
    with gzip.open(io.BytesIO(wheel.read("reasoning_gym/data/codeio.jsonl.gz"))) as f:
        for line in f:
            d = json.loads(line)
            yield (
                "You are given a question that requires some input and output variables as follows:\n\n"
                f"{d['task_description']}\n\n{d['input_output_spec']}\n\n"
                f"Given the following reference code, predict the output.\n\n{d['code_sample']}"
            )


def nl2bash_rows(wheel):
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(n for n in z.namelist() if re.search(r"datasets/nl2bash_fs_\d+\.json$", n)):
            for d in json.loads(z.read(name)):
                if isinstance(d, dict) and isinstance(d.get("query"), str):
                    yield d["query"]


def fill(form, rng, **pools):
    """`form` with each {name} taken from pools[name] (a list) or given."""
    values = {k: (rng.choice(v) if isinstance(v, list) else v) for k, v in pools.items()}
    return form.format(**values)


def form_rows(tar, members, gym, templates, rng):
    """(label, family, text) from forms.py and promptsource's templates."""
    articles = [a for a in bigbench_rows(tar, members, "gem/xsum", "raw")]
    articles += list(bigbench_rows(tar, members, "gem/wikilingua_en", "raw"))
    rng.shuffle(articles)
    docs = [excerpt(a, rng.choice([300, 600, 1200])) for a in articles]
    short = [excerpt(a, rng.choice([80, 160, 240])) for a in articles]
    dialogues = []
    for conv in bigbench_rows(tar, members, "topical_chat", "raw"):
        turns = [re.sub(r'^agent_([AB]):\s*"?|"$', r"\1: ", t) for t in conv.strip().splitlines()[-6:]]
        dialogues.append("\n".join(turns))
    foreign = list(bigbench_rows(tar, members, "gem/mlsum_de", "raw")) + list(bigbench_rows(tar, members, "gem/mlsum_es", "raw"))
    code = [d["code_sample"].split("\n") for d in codeio_records(gym)]
    concepts = [", ".join(c.split()[:3]) for c in bigbench_rows(tar, members, "gem/common_gen", "raw")]
    problems = list(bigbench_rows(tar, members, "elementary_math_qa/question_only", "raw"))
    content = promptsource_forms.Content(rng, docs, dialogues, PASSAGE_QUESTIONS, concepts, problems)
    rendered = promptsource_forms.render_all(templates, content, per_template=12, seed=3)
    n = lambda: rng.choice([2, 3, 5])
    num = lambda lo, hi: [str(x) for x in range(lo, hi)]
    made = {
        ("summarize", "articles"): [fill(rng.choice(forms.SUMMARIZE), rng, doc=d, n=n(), w=rng.choice([50, 80, 100])) for d in docs],
        ("summarize", "dialogues"): [fill(rng.choice(forms.SUMMARIZE_DIALOGUE), rng, doc=d, n=n()) for d in dialogues],
        ("extract", "articles"): [fill(rng.choice(forms.EXTRACT), rng, doc=d) for d in docs[::-1]],
        ("extract", "records"): [f.format(rec=r, field=fd) for f in forms.EXTRACT_RECORD for r, fd in forms.RECORDS],
        ("translate", "to"): [fill(rng.choice(forms.TRANSLATE), rng, doc=d, lang=forms.LANGUAGES) for d in short],
        ("translate", "from"): [
            fill(rng.choice(forms.TRANSLATE_FROM), rng, doc=excerpt(d, rng.choice([80, 160, 300])), src=["German", "Spanish"])
            for d in foreign
        ],
        ("code", "with_code"): [
            fill(rng.choice(forms.CODE_WITH_CODE), rng, code="\n".join(c[: rng.choice([6, 12, 24])]), lang=forms.CODE_LANGS)
            for c in code
        ],
        ("code", "requests"): [
            fill(f, rng, task=t, lang=forms.CODE_LANGS) for f in forms.CODE_REQUEST for t in forms.CODE_TASKS
        ],
        ("code", "agent"): [fill(f, rng, **forms.AGENT_FILLS) for f in forms.CODE_AGENT for _ in range(6)],
        ("math", "forms"): [
            fill(f, rng, a=num(2, 40), b=num(2, 12), c=num(3, 90), d=num(2, 9), n=num(40, 2000), p=num(3, 60), expr=forms.MATH_EXPRS)
            for f in forms.MATH for _ in range(8)
        ],
        ("creative", "forms"): [fill(rng.choice(forms.CREATIVE), rng, t=c) for c in concepts],
        ("creative", "from_text"): [fill(rng.choice(forms.CREATIVE_FROM_TEXT), rng, doc=d) for d in docs[1::3]],
        ("chat", "forms"): [fill(f, rng, **forms.CHAT_FILLS) for f in forms.CHAT for _ in range(10)],
    }
    for label, parts in FORM_CAPS.items():
        for what, cap in parts:
            if what == "promptsource":
                texts, family = [t for _, t in rendered.get(label, [])], "promptsource"
            else:
                texts, family = made[(label, what)], "switchyard-forms"
            rng.shuffle(texts)
            for text in texts[:cap]:
                yield label, family, f"{family}:{label}:{what}", text


def main():
    p = argparse.ArgumentParser()
    for name in ("evals", "bigbench", "gym", "icalfa", "promptsource", "eval-packages", "handwritten", "out"):
        p.add_argument("--" + name, required=True)
    args = p.parse_args()
    evals = zipfile.ZipFile(args.evals)
    gym = zipfile.ZipFile(args.gym)
    tar = tarfile.open(args.bigbench)
    members = {m.name: m for m in tar.getmembers() if m.name.endswith("task.json")}

    evaluation = eval_sets.handwritten(args.handwritten) + eval_sets.registry(eval_sets.wheel_paths(args.eval_packages))
    held_out = {norm(r["text"]) for r in evaluation}
    seen = set()
    rows = []
    counts = {}

    def take(label, family, source, system, text):
        key = norm((system or "") + "\n" + text)
        if key in seen or norm(text) in held_out:
            return False
        seen.add(key)
        rows.append({"text": text, "system": system, "label": label, "source": source, "family": family, "split": split_of(key)})
        return True

    for label, sources in SOURCES.items():
        for package, name, cap, how in sources:
            candidates = []
            if package == "evals":
                for sample in evals_rows(evals, name):
                    pair = messages(sample)
                    if pair and pair[1] and pair[1].strip():
                        candidates.append((pair[0], pair[1]))
            elif package == "reasoning_gym":
                candidates = [(None, t) for t in codeio_rows(gym)]
            elif package == "icalfa":
                candidates = [(None, t) for t in nl2bash_rows(args.icalfa)]
            else:
                candidates = [(None, t) for t in bigbench_rows(tar, members, name, how) if t.strip()]
            # A fixed shuffle, so the cap takes a spread of each set.
            random.Random(name + how).shuffle(candidates)
            family = package.replace("_", "-")
            taken = 0
            for system, text in candidates:
                if taken >= cap:
                    break
                taken += take(label, family, f"{package}:{name}", system, text)
            counts[f"{label} <- {package}:{name} ({how})"] = taken

    templates = promptsource_forms.original_templates(args.promptsource)
    for label, family, source, text in form_rows(tar, members, gym, templates, random.Random(17)):
        counts[f"{label} <- {source}"] = counts.get(f"{label} <- {source}", 0) + take(label, family, source, None, text)

    for r in evaluation:
        rows.append({
            "text": r["text"], "system": r["system"], "label": r["label"],
            "source": r.get("source", r["family"]), "family": r["family"], "split": "eval",
        })
        counts[f"{r['label']} <- eval {r.get('source', r['family'])}"] = counts.get(f"{r['label']} <- eval {r.get('source', r['family'])}", 0) + 1
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    for k, v in counts.items():
        print(f"{v:5d}  {k}", file=sys.stderr)
    print(f"{len(rows)} examples", file=sys.stderr)


if __name__ == "__main__":
    main()
