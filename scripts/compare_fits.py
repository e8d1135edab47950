"""Did a change alter what `harness fit` reports? The committed studies fitted at two revisions, compared.

    python scripts/compare_fits.py --base 8656be1            # HEAD against 8656be1
    python scripts/compare_fits.py --base HEAD --head HEAD   # the same revision twice: reproducible?

Each revision is installed as `bench_revisions.py` installs it; every fit runs as a fresh `harness fit`
process into its own folder: the untuned scaling studies (results/study/*-cpu-untuned: a revision before
issue 29 cannot fit the tuned ones' tune=), the theory experiment's eight fits (results/theory),
torchvision's zoo and all six of the paper's benchmarks. Every file written is compared byte for byte,
and so is what the command printed (with the output folder's name masked).
SVGs drawn before figures were made reproducible carry a date and random element ids; `--svg-loose` masks
those two (and only those) to compare such a revision's drawings. Exit status 1 when anything differs.
"""

from __future__ import annotations

import filecmp
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_revisions import REPO, _git, check_revisions, install, revision_parser

STUDY = ["x=[network_operations,hardware_burden,energy_total_j]", "frontier=both"]
ARM = ["specs=[poly]", "parametric.enabled=false", "plots=[]"]
FITS = {
    "study_mnist1d": ["results={results}/study/mnist1d-cpu-untuned", *STUDY],
    "study_fashion_mnist": ["results={results}/study/fashion_mnist-cpu-untuned", *STUDY],
    "zoo": ["reference=torchvision", "plots=[png]"],
    "paper": ["reference=all"],
    **{
        f"theory_{x}_{model}": ["results={results}/theory/runs.csv", f"x={x}", f"filter.model={model}", *ARM]
        for x in ("n_train", "network_operations")
        for model in ("linear_expert", "linear_flexible", "linear_lasso", "mlp_ntk")
    },
}


def fit(site: Path, args: list[str], out: Path, cwd: Path) -> str:
    """One `harness fit` process writing into `out`; what it printed, with `out` masked."""
    command = [sys.executable, "-m", "harness.cli", "fit", *args, f"out={out}"]
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"harness fit {' '.join(args)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.replace(str(out), "OUT")


def _svg_masked(text: str) -> str:
    text = re.sub(r"\s*<dc:date>.*?</dc:date>", "", text)  # the element and its line
    return re.sub(r"[0-9a-f]{10}\b", "ID", text)  # matplotlib's hashed element ids (C0_0_1a713ce879)


def differing(a: Path, b: Path, svg_loose: bool) -> list[str]:
    """Files that differ between the folders `a` and `b` (or that only one of them holds)."""
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    names |= {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    out = []
    for name in sorted(names):
        left, right = a / name, b / name
        if not (left.is_file() and right.is_file()):
            out.append(f"{name} (in one only)")
        elif svg_loose and name.suffix == ".svg":
            if _svg_masked(left.read_text()) != _svg_masked(right.read_text()):
                out.append(str(name))
        elif not filecmp.cmp(left, right, shallow=False):
            out.append(str(name))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = revision_parser(__doc__)
    parser.add_argument("--svg-loose", action="store_true", help="mask SVG dates and element ids")
    parser.add_argument("--fits", default=",".join(FITS), help="which fits, comma-separated (default: all)")
    args = parser.parse_args(argv)
    check_revisions(parser, args)
    chosen = args.fits.split(",")
    unknown = sorted(set(chosen) - set(FITS))
    if unknown:
        parser.error(f"unknown fit(s) {', '.join(unknown)}; choose from {', '.join(FITS)}")
    differences = 0
    with tempfile.TemporaryDirectory(prefix="compare_fits_") as tmp:
        root = Path(tmp)
        base = install(args.base, root)
        same = _git("rev-parse", "--verify", f"{args.head}^{{commit}}") == base[0]
        head = base if same else install(args.head, root)
        print(f"base {base[0][:12]}, head {head[0][:12]}", flush=True)
        results = str(REPO / "results")
        sites = (("base", base), ("head", head))
        for name in chosen:
            fit_args = [a.format(results=results) for a in FITS[name]]
            printed = [fit(site, fit_args, root / label / name, root) for label, (_, site) in sites]
            files = differing(root / "base" / name, root / "head" / name, args.svg_loose)
            same_print = printed[0] == printed[1]
            verdict = (
                "identical"
                if not files and same_print
                else "DIFFERENT: " + ", ".join(files + ([] if same_print else ["printed tables"]))
            )
            count = sum(1 for p in (root / "base" / name).rglob("*") if p.is_file())
            print(f"{name}: {count} files and the printed tables: {verdict}", flush=True)
            differences += verdict != "identical"
    print("every fit identical" if not differences else f"{differences} fit(s) differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
