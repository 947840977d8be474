#!/usr/bin/env python3
"""Reference scores for qa-metrics, computed with the semantics of the official SQuAD v1.1
evaluation script (evaluate-v1.1.py): normalise (lower-case, drop string.punctuation, drop the
whole words a/an/the, collapse whitespace), EM = equal normalised strings, F1 = multiset token
overlap, each question the maximum over its gold answers, totals 100 * sum / n.

Writes fixtures/metrics/squad_reference.jsonl: hand-picked edge cases, then predictions derived
deterministically from real SQuAD dev questions (spans shifted around the gold answer, other
questions' answers, articles, case and punctuation changes), with the expected normalised
prediction, EM and F1. The last line holds the totals over the dev-derived cases.

Usage: python3 xtask/golden/squad_metrics_reference.py [path/to/dev-v1.1.json]
Standard library only; the output is deterministic.
"""
import collections
import json
import random
import re
import string
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def normalize_answer(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction, gold):
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction, gold):
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((collections.Counter(p) & collections.Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return (2 * precision * recall) / (precision + recall)


EDGE_CASES = [
    ("The Denver Broncos!", ["Denver Broncos"]),
    ("theater", ["the theater"]),
    ("Anthem of a Nation", ["anthem of nation"]),
    ("U.S.-based", ["US based", "usbased"]),
    ("1990–1995", ["1990-1995", "19901995"]),
    ("“Quoted”", ["Quoted"]),
    ("a\u200bb", ["\u200bb"]),
    ("the\u0301 end", ["end"]),
    ("a1 the½ a", ["a1 the½"]),
    ("snake_case", ["snakecase"]),
    (" Two\t\nwords\u00a0here\u001ftoo ", ["two words here too"]),
    ("", ["Denver"]),
    ("the", ["a"]),
    ("an", ["an apple"]),
    ("x b b b", ["b b c"]),
    ("c b", ["b c"]),
    ("Denver team", ["Denver Broncos", "Broncos", "the team"]),
    ("ÉCOLE Normale", ["école normale supérieure"]),
    ("İstanbul", ["i̇stanbul"]),
    ("ΣΟΦΟΣ", ["σοφος", "σοφοσ"]),
]


def dev_cases(dev_path, count=1500, seed=13):
    data = json.loads(Path(dev_path).read_text(encoding="utf-8"))["data"]
    questions = [
        (qa["id"], p["context"], [a["text"] for a in qa["answers"]], [a["answer_start"] for a in qa["answers"]])
        for article in data
        for p in article["paragraphs"]
        for qa in p["qas"]
    ]
    rng = random.Random(seed)
    picked = rng.sample(questions, count)
    cases = []
    for i, (qid, context, golds, starts) in enumerate(picked):
        kind = i % 8
        first, start = golds[0], starts[0]
        if kind == 0:
            pred = first
        elif kind == 1:  # a span shifted around the answer
            lo = max(0, start + rng.randint(-25, 10))
            hi = min(len(context), start + len(first) + rng.randint(-10, 25))
            pred = context[lo:max(lo, hi)]
        elif kind == 2:
            pred = "The " + first.upper() + "."
        elif kind == 3:  # another question's answer
            pred = rng.choice(questions)[2][0]
        elif kind == 4:
            pred = " ".join(first.split()[:-1])
        elif kind == 5:
            pred = first + " " + first.split()[0]
        elif kind == 6:
            pred = golds[-1].replace(" ", "  ") + " (" + str(rng.randint(0, 99)) + ")"
        else:
            pred = ""
        cases.append((qid, pred, golds))
    return cases


def main():
    dev = sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/data/squad/dev-v1.1.json"
    out = ROOT / "fixtures/metrics/squad_reference.jsonl"
    lines = []
    for pred, golds in EDGE_CASES:
        lines.append({
            "kind": "edge",
            "prediction": pred,
            "golds": golds,
            "normalized": normalize_answer(pred),
            "exact_match": max(exact_match(pred, g) for g in golds),
            "f1": max(f1(pred, g) for g in golds),
        })
    total_em = total_f1 = 0.0
    cases = dev_cases(dev)
    for qid, pred, golds in cases:
        em = max(exact_match(pred, g) for g in golds)
        score = max(f1(pred, g) for g in golds)
        total_em += em
        total_f1 += score
        lines.append({"kind": "dev", "id": qid, "prediction": pred, "exact_match": em, "f1": score})
    lines.append({
        "kind": "totals",
        "questions": len(cases),
        "exact_match": 100.0 * total_em / len(cases),
        "f1": 100.0 * total_f1 / len(cases),
    })
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"wrote {len(lines)} lines to {out}")


if __name__ == "__main__":
    main()
