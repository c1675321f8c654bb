"""Instructions written by many people: promptsource's templates.

promptsource (PyPI, pinned in train.sh) holds the prompt templates that
dozens of contributors wrote for public data sets. Only a data set's
*original task* templates are used (a summarization set also has "write a
dialogue that matches this summary", which is not a request to summarize),
and only the part a user would send (before `|||`). The data sets
themselves are not in the package, so every field is filled from the
content the builder passes in (articles, dialogues, questions): what the
head must learn is the instruction, never the content.

Needs jinja2 and PyYAML (train.sh installs pinned versions).
"""

import random
import tarfile

import jinja2
import yaml

# data set (folder under promptsource/templates) -> label
DATASETS = {
    "summarize": [
        "xsum", "cnn_dailymail/3.0.0", "samsum", "gigaword", "multi_news", "scitldr/Abstract", "billsum",
    ],
    "extract": [
        "squad", "squad_v2", "adversarial_qa/adversarialQA", "quoref",
        "ade_corpus_v2/Ade_corpus_v2_drug_ade_relation", "ade_corpus_v2/Ade_corpus_v2_drug_dosage_relation",
        "ncbi_disease", "species_800", "acronym_identification",
    ],
    "math": [
        "math_dataset/algebra__linear_1d", "math_dataset/algebra__linear_2d", "math_qa", "aqua_rat/raw",
    ],
    "creative": ["common_gen"],
}


def _loader():
    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, _suffix, node):
        return loader.construct_mapping(node, deep=True)

    Loader.add_multi_constructor("!", mapping)
    return Loader


def original_templates(sdist):
    """label -> [(data set, jinja source of the user part)]."""
    loader = _loader()
    out = {label: [] for label in DATASETS}
    with tarfile.open(sdist) as tar:
        names = {m.name: m for m in tar.getmembers()}
        for label, sets in DATASETS.items():
            for name in sets:
                path = f"promptsource-0.2.3/promptsource/templates/{name}/templates.yaml"
                doc = yaml.load(tar.extractfile(names[path]), Loader=loader)
                for t in (doc.get("templates") or {}).values():
                    meta = t.get("metadata") or {}
                    if meta.get("original_task") and isinstance(t.get("jinja"), str):
                        out[label].append((name, t["jinja"].split("|||")[0]))
    return out


class Content:
    """What fills a template's fields, chosen by field name."""

    def __init__(self, rng, documents, dialogues, questions, concepts, problems):
        self.rng = rng
        self.pools = {
            "document": documents,
            "dialogue": dialogues,
            "question": questions,
            "concepts": concepts,
            "problem": problems,
        }

    def pick(self, name, label):
        name = (name or "").lower()
        if label == "math":
            pool = "problem"
        elif label == "creative":
            pool = "concepts"
        elif "question" in name or name in ("query",):
            pool = "question"
        elif "dialog" in name:
            pool = "dialogue"
        elif name in ("answers", "answer", "summary", "highlights", "target", "title", "label", "options", "choices"):
            return "…"
        else:
            pool = "document"
        return self.rng.choice(self.pools[pool])


def render_all(templates, content, per_template, seed):
    """label -> [(data set, rendered prompt)]; templates that do not
    render with stand-in fields are skipped."""
    rng = random.Random(seed)
    out = {}
    for label, forms in templates.items():
        rendered = []
        for dataset, source in forms:

            class Fill(jinja2.ChainableUndefined):
                def __str__(self):
                    return content.pick(self._undefined_name, label)

                def __iter__(self):
                    return iter([str(self)])

                def __len__(self):
                    return 1

                def __bool__(self):
                    return True

            env = jinja2.Environment(undefined=Fill)
            try:
                template = env.from_string(source)
                for _ in range(per_template):
                    text = template.render().strip()
                    if text and "…" not in text[:40]:
                        rendered.append((dataset, text))
            except Exception:  # a template that needs the real record
                continue
        rng.shuffle(rendered)
        out[label] = rendered
    return out
