"""`harness fit`: the paper's scaling regressions on its own data or on our runs (root config conf/fit.yaml).

`fit(cfg)` is the plain function (it computes everything and writes nothing); `write(analyses, out)` puts
the report in place whole; `main` is the thin Hydra entry point that prints the tables.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

from harness.cli import run_command
from harness.errors import ConfigError, HarnessError, one_line
from harness.report import print_summary, write_outputs
from harness.scaling import (
    BenchmarkAnalysis,
    analyse_reference,
    analyse_runs,
    analyse_torchvision,
    reference,
    zoo,
)
from harness.scaling.runs import read_runs
from harness.settings import FitSettings, plain


def fit(cfg: DictConfig) -> list[BenchmarkAnalysis]:
    """Every analysis `cfg` asks for; bad input raises a one-line HarnessError before anything is written."""
    if (cfg.reference is None) == (cfg.results is None):
        raise ConfigError(
            "give one of reference=<benchmark|all> (the paper's data) or results=<dir|file> (ours)"
        )
    settings = FitSettings.from_config(cfg)
    if cfg.reference == zoo.ZOO:
        return analyse_torchvision(settings)
    if cfg.reference is not None:
        names = reference.NAMES if cfg.reference == "all" else (reference.benchmark(str(cfg.reference)).name,)
        return [analyse_reference(name, settings) for name in names]
    return analyse_runs(read_runs(cfg.results), settings)


def check_out(out: Path, *, overwrite: bool) -> None:
    """Refuse to replace a non-empty `out` unless asked: checked before any work is done."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"out={out} is not empty; pass overwrite=true or choose another directory")


def write(analyses: list[BenchmarkAnalysis], out: Path, *, formats: tuple[str, ...], overwrite: bool) -> None:
    """Write the report into a fresh sibling directory, then rename it into place: never half-written."""
    check_out(out, overwrite=overwrite)
    staging = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()  # beside `out`, so that the final rename stays within one filesystem
        write_outputs(analyses, staging, formats=formats)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{secrets.token_hex(3)}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    except OSError as exc:  # a read-only or full disk: one line, and nothing half-written is left
        shutil.rmtree(staging, ignore_errors=True)
        reason = exc.strerror or one_line(exc)
        raise HarnessError(f"out={out} could not be written ({reason}); choose a writable directory") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _formats(cfg: DictConfig) -> tuple[str, ...]:
    formats = tuple(plain(cfg.plots) or ())
    unknown = [f for f in formats if f not in ("png", "svg", "pdf")]
    if unknown:
        raise ConfigError(f"plots={list(formats)}: {unknown} unknown; use png, svg or pdf")
    return formats


@hydra.main(version_base="1.3", config_path="pkg://harness.conf", config_name="fit")
def hydra_main(cfg: DictConfig) -> None:
    out = Path(cfg.out) if cfg.out is not None else None
    try:
        formats = _formats(cfg)
        if out is not None:
            check_out(out, overwrite=bool(cfg.overwrite))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            analyses = fit(cfg)
            if out is not None:
                write(analyses, out, formats=formats, overwrite=bool(cfg.overwrite))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print_summary(analyses, out)
    for line in warning_lines(caught):
        print(line, file=sys.stderr)


def warning_lines(caught: list[warnings.WarningMessage]) -> list[str]:
    """numpy's, pandas' and statsmodels' warnings as one line each, once, naming where they came from: what
    they say about a fit the report already shows (an unbounded interval, a dropped point); a raw
    traceback-like warning on the console would only hide that."""
    lines = []
    for warning in caught:
        origin = Path(warning.filename).stem
        line = f"warning: {str(warning.message).splitlines()[0]} ({warning.category.__name__} in {origin})"
        if line not in lines:
            lines.append(line)
    return lines


def main() -> None:
    """`python -m harness.fit`: the same command as `harness fit` (checks before Hydra runs)."""
    run_command("fit", sys.argv[1:])


if __name__ == "__main__":
    main()
