"""Checks a run's export (qa-report's export/) with the Hugging Face libraries themselves.

Offline, every exported dataset must load with `datasets.load_dataset(folder)` into the splits
its card's `configs:` names, with as many rows as the run's own data files; every card must
load with `huggingface_hub`'s `DatasetCard.load` / `ModelCard.load` and `metadata_load`, and a
model card's `model-index` must parse into evaluation results; every adapter must load with
`PeftModel.from_pretrained` on its base model when that model is a local directory.

Run by `cargo xtask check-export --run-dir DIR` in the project's `.venv`.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import datasets  # noqa: E402
from huggingface_hub import DatasetCard, ModelCard  # noqa: E402
from huggingface_hub.repocard import metadata_load  # noqa: E402

# The run's data file behind each exported split.
SOURCES = {
    "provenance-qa-human": {
        "train": "data/processed/human_train.jsonl",
        "validation": "data/processed/human_val.jsonl",
        "test": "data/processed/human_test.jsonl",
    },
    "provenance-qa-ai-contaminated": {"train": "data/processed/ai_contaminated_train.jsonl"},
    "provenance-qa-synthetic": {"train": "data/synthetic/synthetic_train.jsonl"},
}
SQUAD_COLUMNS = {"id", "title", "context", "question", "answers"}
DATASET_KEYS = {
    "license", "language", "task_categories", "task_ids", "source_datasets",
    "size_categories", "pretty_name", "configs",
}
MODEL_KEYS = {"base_model", "library_name", "license", "datasets", "pipeline_tag", "tags",
              "model-index"}


def lines(path: Path) -> int:
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def check_dataset(folder: Path, run_dir: Path, cache: Path) -> str:
    card = DatasetCard.load(folder / "README.md")
    metadata = metadata_load(folder / "README.md")
    missing = DATASET_KEYS - set(metadata)
    assert not missing, f"{folder}: the card lacks {sorted(missing)}"
    assert metadata["license"] == "cc-by-sa-4.0", metadata["license"]
    assert card.data.task_ids == ["extractive-qa"], card.data.task_ids
    loaded = datasets.load_dataset(str(folder), cache_dir=str(cache))
    expected = SOURCES[folder.name]
    assert set(loaded) == set(expected), f"{folder}: splits {sorted(loaded)}, not {sorted(expected)}"
    counts = []
    for split, source in expected.items():
        rows = loaded[split]
        want = lines(run_dir / source)
        assert rows.num_rows == want, f"{folder} {split}: {rows.num_rows} rows, the run has {want}"
        missing = SQUAD_COLUMNS - set(rows.column_names)
        assert not missing, f"{folder} {split}: no column {sorted(missing)}"
        answers = rows.features["answers"]
        assert set(answers) == {"text", "answer_start"}, answers
        first = rows[0]
        for text, start in zip(first["answers"]["text"], first["answers"]["answer_start"]):
            if start >= 0:
                assert first["context"][start:start + len(text)] == text, (folder, split, first["id"])
        counts.append(f"{split} {rows.num_rows}")
    return f"{folder.name}: " + ", ".join(counts)


def check_model(folder: Path) -> str:
    card = ModelCard.load(folder / "README.md")
    metadata = metadata_load(folder / "README.md")
    missing = MODEL_KEYS - set(metadata)
    assert not missing, f"{folder}: the card lacks {sorted(missing)}"
    assert metadata["library_name"] == "peft"
    results = card.data.eval_results
    assert results, f"{folder}: model-index gives no evaluation results"
    scores = {r.metric_type: r.metric_value for r in results}
    assert set(scores) == {"exact_match", "f1"}, scores
    base = metadata["base_model"]
    loaded = "base model not local: adapter not loaded"
    if Path(base).is_dir():
        from peft import PeftModel
        from transformers import AutoModelForSeq2SeqLM

        model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(base), str(folder))
        config = json.loads((folder / "adapter_config.json").read_text())
        assert model.peft_config["default"].r == config["r"]
        loaded = "PeftModel loads it"
    return f"{folder.name}: EM {scores['exact_match']}, F1 {scores['f1']}; {loaded}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True, type=Path)
    args = parser.parse_args()
    export = args.run_dir / "export"
    datasets_dir = sorted((export / "datasets").iterdir())
    models_dir = sorted((export / "models").iterdir())
    assert [d.name for d in datasets_dir] == sorted(SOURCES), [d.name for d in datasets_dir]
    assert models_dir, f"{export}/models is empty"
    cache = Path(tempfile.mkdtemp(prefix="export-check-"))
    for folder in datasets_dir:
        print(check_dataset(folder, args.run_dir, cache))
    for folder in models_dir:
        print(check_model(folder))
    print(f"export checked: {len(datasets_dir)} datasets, {len(models_dir)} adapters "
          f"(datasets {datasets.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
