"""Did a change slow training down? The same `harness train` at two git revisions, alternating, side by side.

    python scripts/bench_revisions.py --base 0cbb5d3 --pairs 5 -- data=mnist1d model=cnn trainer.epochs=4

Each revision is exported (`git archive`) and installed without dependencies into its own folder under a
temporary directory; every run is a fresh `python -m harness.cli train` process with that folder first on
PYTHONPATH, started from the temporary directory so neither checkout shadows it. Rounds alternate the order
(base, head / head, base / ...) so a slow drift of the machine hits both alike. Throughput is samples_seen /
train_time_s from each run's record (training segments only: warm-up, evaluation and start-up excluded).
Prints every run, the median of each revision and head/base, and writes a CSV with --out. Arguments after
`--` are Hydra overrides for both revisions (they must mean the same thing at both).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench_table import write_rows

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def install(revision: str, root: Path) -> tuple[str, Path]:
    """(full commit, site folder) with that revision's harness installed into the folder."""
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}")
    source, site = root / f"src-{commit[:12]}", root / f"site-{commit[:12]}"
    if site.is_dir():  # --base and --head name one commit (an A/A check): one install serves both
        return commit, site
    source.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(source)], check=True, capture_output=True)
    return commit, site


def train_once(site: Path, overrides: list[str], results: Path, cwd: Path) -> tuple[dict, str]:
    """One training process: its run record (the job's; an ensemble's members summed) and the fingerprint
    of what it trained (every evaluation's losses and errors, to the last bit, times left out)."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-m", "harness.cli", "train", *overrides, f"paths.results_dir={results}"]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    paths = sorted(results.rglob("run.json"))
    if done.returncode != 0 or not paths:
        # Hydra ends with a hint about HYDRA_FULL_ERROR; the line before it names the problem.
        lines = [line for line in (done.stderr or done.stdout).splitlines() if "HYDRA_FULL_ERROR" not in line]
        problem = next((line for line in reversed(lines) if line.strip()), "no output")
        raise RuntimeError(f"training failed (exit {done.returncode}): {problem.strip()}")
    records = [json.loads(path.read_text()) for path in paths]
    record = {**records[0], **{k: sum(r[k] for r in records) for k in ("samples_seen", "train_time_s")}}
    return record, "\n".join(_fingerprint(path, r) for path, r in zip(paths, records, strict=True))


def _fingerprint(record_path: Path, record: dict) -> str:
    """A run's outcome as text: its final losses and, from curve.csv, every evaluation but its clock."""
    final = f"seed={record['seed']} train_loss={record['train_loss']!r} test_loss={record['test_loss']!r}"
    curve = record_path.with_name("curve.csv")
    if not curve.exists():
        return final
    with curve.open(newline="") as handle:
        rows = [{k: v for k, v in row.items() if k != "train_time_s"} for row in csv.DictReader(handle)]
    return "\n".join([final, *(str(row) for row in rows)])


def revision_parser(doc: str) -> argparse.ArgumentParser:
    """A script's argument parser with --base and --head (see check_revisions)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--head", default="HEAD", help="the revision under test (HEAD)")
    return parser


def check_revisions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A one-line usage error unless --base and --head are commits git knows."""
    try:
        _git("rev-parse", "--verify", f"{args.base}^{{commit}}")
        _git("rev-parse", "--verify", f"{args.head}^{{commit}}")
    except subprocess.CalledProcessError:
        parser.error(
            f"--base {args.base} or --head {args.head} is not a commit of {REPO}; pass one git knows"
        )


def main(argv: list[str] | None = None) -> int:
    parser = revision_parser(__doc__)
    parser.add_argument("--pairs", type=int, default=5, help="rounds of both revisions (5)")
    parser.add_argument("--out", type=Path, default=None, help="CSV of every run (default: print only)")
    args, overrides = parser.parse_known_args(argv)
    overrides = [o for o in overrides if o != "--"]
    if args.pairs < 1:
        parser.error(f"--pairs must be at least 1, got {args.pairs}")
    check_revisions(parser, args)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_revisions_") as tmp:
        root = Path(tmp)
        sites = {}
        for label, revision in (("base", args.base), ("head", args.head)):
            sites[label] = install(revision, root)
            print(f"{label}: {revision} = {sites[label][0][:12]}", flush=True)
        for pair in range(args.pairs):
            for label in ("base", "head") if pair % 2 == 0 else ("head", "base"):
                commit, site = sites[label]
                try:
                    record, fingerprint = train_once(site, overrides, root / f"runs-{pair}-{label}", root)
                except RuntimeError as exc:
                    print(f"{label} ({commit[:12]}): {exc}", file=sys.stderr)
                    return 2
                rate = record["samples_seen"] / record["train_time_s"]
                rows.append(
                    {
                        "pair": pair,
                        "revision": label,
                        "commit": commit,
                        "samples_per_s": rate,
                        "train_time_s": record["train_time_s"],
                        "steps": record["steps"],
                        "test_error": record["test_error"],
                        "device_name": record["device_name"],
                        "torch": record["versions"].get("torch"),
                        "fingerprint": fingerprint,
                    }
                )
                print(
                    f"pair {pair} {label} {rate:12.1f} samples/s  train {record['train_time_s']:.2f} s",
                    flush=True,
                )

    medians = {
        label: statistics.median(r["samples_per_s"] for r in rows if r["revision"] == label)
        for label in ("base", "head")
    }
    for label, rate in medians.items():
        print(f"median {label} {rate:12.1f} samples/s")
    ratio = medians["head"] / medians["base"]
    print(f"head/base throughput ratio {ratio:.3f}  (overrides: {' '.join(overrides)})")
    # A speed-up that trained a different model would be no speed-up: say whether the outcomes agree.
    errors = {label: {r["test_error"] for r in rows if r["revision"] == label} for label in ("base", "head")}
    same = "identical" if errors["base"] == errors["head"] else "DIFFERENT"
    print(f"final test errors: base {sorted(errors['base'])}, head {sorted(errors['head'])} ({same})")
    # Bit for bit: every evaluation's train loss, test loss and error, at every run of both revisions.
    prints = {
        label: {r.pop("fingerprint") for r in rows if r["revision"] == label} for label in ("base", "head")
    }
    bitwise = len(prints["base"] | prints["head"]) == 1
    print(f"learning curves (every evaluation, every run): {'bit-identical' if bitwise else 'DIFFERENT'}")
    if args.out is not None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_rows(args.out, rows, f"{stamp} overrides: {' '.join(overrides)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
