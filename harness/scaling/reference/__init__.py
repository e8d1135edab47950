"""The paper authors' six benchmark tables, shipped beside this file (see SOURCE.md: GPL-3.0), loaded clean.

`load(name)` gives one row per published model with the compute columns the paper regresses on
(`ops_forward_pass` = `flops`, else 2 × `multiadds`; `network_operations`; `hardware_burden`) and every score
as a fraction, plus `score` (the benchmark's primary one) and `error` = 1 − `score`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from types import MappingProxyType

import pandas as pd

from harness.errors import ConfigError


@dataclass(frozen=True)
class Benchmark:
    name: str
    file: str
    score: str  # clean name of the primary score column
    label: str  # what the benchmark and its score are, for tables and plots
    error_label: str  # what `error` is on this benchmark


BENCHMARKS = (
    Benchmark(
        "imagenet", "image-classification-on-imagenet.csv", "top_1_score", "ImageNet (top-1)", "top-1 error"
    ),
    Benchmark("coco", "object-detection-on-coco.csv", "box_ap", "MS COCO (box AP)", "1 − box AP"),
    Benchmark("squad", "question-answering-on-squad-1-1.csv", "em_score", "SQuAD 1.1 (EM)", "1 − EM"),
    Benchmark("conll", "named-entity-recognition-on-conll-2003.csv", "f1_score", "CoNLL-2003 (F1)", "1 − F1"),
    Benchmark(
        "wmt_en_de", "machine-translation-on-wmt2014-en-de.csv", "bleu", "WMT14 En-De (BLEU)", "1 − BLEU"
    ),
    Benchmark(
        "wmt_en_fr", "machine-translation-on-wmt2014-en-fr.csv", "bleu", "WMT14 En-Fr (BLEU)", "1 − BLEU"
    ),
)
NAMES = tuple(b.name for b in BENCHMARKS)

# The raw columns kept, under the names the rest of the harness uses.
_NUMERIC = ("year", "parameters", "flops", "multiadds", "training_epochs", "training_set_size")
_COMPUTE = ("network_operations", "hardware_burden")
# The authors' own consolidated hardware burden (measured, else imputed), kept to check ours against.
_AUTHORS_CONSOLIDATED = MappingProxyType({"computing_power": "hardware_burden_consolidated_authors"})
# Rows 1–3 under the header are group labels, sub-labels and a blank line, not models.
_SKIP_ROWS = (1, 2, 3)


def benchmark(name: str) -> Benchmark:
    for entry in BENCHMARKS:
        if entry.name == name:
            return entry
    raise ConfigError(f"reference={name} is unknown; choose one of {', '.join(NAMES)}, all or torchvision")


def _score_name(header: str) -> str:
    """'(TOP 1 score)' -> 'top_1_score': the performance columns are the parenthesised ones."""
    return re.sub(r"[^a-z0-9]+", "_", header.strip("() ").lower()).strip("_")


def load(name: str) -> pd.DataFrame:
    """The named benchmark's table, clean: numbers numeric, scores as fractions, `score` and `error` added."""
    entry = benchmark(name)
    with (files(__name__) / entry.file).open("rb") as fh:
        raw = pd.read_csv(fh, skiprows=list(_SKIP_ROWS))
    table = pd.DataFrame({"name": raw["name"].astype(str)})
    for column in (*_NUMERIC, *_COMPUTE, *(c for c in _AUTHORS_CONSOLIDATED if c in raw)):
        table[_AUTHORS_CONSOLIDATED.get(column, column)] = pd.to_numeric(raw[column], errors="coerce")
    table["ops_forward_pass"] = table["flops"].combine_first(2.0 * table["multiadds"])
    for header in (h for h in raw.columns if h.startswith("(")):
        table[_score_name(header)] = pd.to_numeric(raw[header], errors="coerce") / 100.0
    table["score"] = table[entry.score]
    table["error"] = 1.0 - table["score"]
    return table


# torchvision's model zoo, a second survey of ImageNet built by scripts/build_torchvision_reference.py.
TORCHVISION = Benchmark(
    "torchvision", "torchvision.csv", "top1_error", "torchvision zoo, ImageNet-1K (top-1)", "top-1 error"
)


def _package_csv(file: str) -> pd.DataFrame:
    with (files(__name__) / file).open("rb") as fh:
        return pd.read_csv(fh)


def torchvision_papers() -> pd.DataFrame:
    """The architectures' papers (model-name prefix, arXiv id, year, month), for the zoo table's year."""
    return _package_csv("torchvision_papers.csv")


def load_torchvision(*, extra_data: bool = True) -> pd.DataFrame:
    """The zoo table, in the names the fits use: `error` (top-1), `ops_forward_pass` (our forward FLOPs),
    `name`; without `extra_data`, only the weights trained on ImageNet-1K alone."""
    table = _package_csv(TORCHVISION.file)
    table = table.assign(
        name=table["model"] + "." + table["weights"],
        error=table["top1_error"],
        ops_forward_pass=table["flops_forward"].astype(float),
    )
    return table if extra_data else table[~table["extra_data"]].reset_index(drop=True)
