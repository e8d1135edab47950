"""Every script in scripts/ in a CPU smoke run: seconds, not minutes; it exits 0 and writes what it says.

These are not measurements (a smoke run's numbers mean nothing); they keep the scripts that only a GPU or a
quiet machine runs for real from rotting unseen: a changed signature or setting breaks them here first.
The runs that take more than a moment are real `scripts/...` processes started in the background when
collection ends (tests/script_smokes.py); each test below waits for its own and checks what it wrote. The
quick ones run here, through the script's `main(argv)`. scripts/slurm_cluster.sh is run by
tests/test_slurm.py; scripts/bench_table.py is the CSV writer the benchmarks share. The revision benchmarks
(bench_revisions, bench_startup, compare_fits) install the committed HEAD: without a git checkout they skip.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO
from script_smokes import BACKGROUND, SCRIPTS, SMALL_TORCHVISION, Finished


def script(name: str, monkeypatch) -> ModuleType:
    """scripts/NAME.py as a module (its siblings importable, as when it runs), not as __main__."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def smoke(request) -> Finished:
    """This test's background smoke run, finished, after checking it exited 0."""
    finished = request.config.stash[BACKGROUND].result(request.node.name)
    proc = finished.proc
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return finished


def rows(path: Path) -> list[dict[str, str]]:
    """A benchmark CSV's rows, after its leading `# how it was made` line."""
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# "), "the CSV says how it was made"
    return list(csv.DictReader(lines[1:]))


# --------------------------------------------------------------------------------- in this process


def test_bench_step_rate_refuses_an_unknown_case(monkeypatch, capsys):
    with pytest.raises(SystemExit) as stopped:
        script("bench_step_rate", monkeypatch).main(["--cases", "mlp99", "--smoke"])
    assert stopped.value.code == 2
    assert "unknown case(s) mlp99; choose from mlp128" in capsys.readouterr().err


def test_bench_counting_smoke(monkeypatch, capsys, tmp_path):
    out = tmp_path / "counting.csv"
    script("bench_counting", monkeypatch).main(
        ["--models", f"tv:{SMALL_TORCHVISION}", "--rounds", "1", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert f"tv:{SMALL_TORCHVISION}: forward" in printed and "median count/forward" in printed
    (row,) = list(csv.DictReader(out.open()))
    assert row["model"] == f"tv:{SMALL_TORCHVISION}" and int(row["macs"]) > 0 and float(row["ratio"]) > 0


def test_bench_track_smoke(monkeypatch, tmp_path):
    out = tmp_path / "track.csv"
    argv = ["--device", "cpu", "--width", "16", "--steps", "20", "--warmup", "2", "--rounds", "1"]
    with pytest.raises(SystemExit) as stopped:
        script("bench_track", monkeypatch).main([*argv, "--min-ratio", "0", "--out", str(out)])
    assert stopped.value.code == 0
    assert {row["condition"] for row in rows(out)} >= {"plain", "track"}


def test_measure_timm_smoke(monkeypatch, tmp_path):
    reference = tmp_path / "published.csv"
    reference.write_text("model,infer_img_size,infer_gmacs\nresnet18,224,1.82\n")
    out = tmp_path / "timm.csv"
    measure_timm = script("measure_timm", monkeypatch)
    assert measure_timm.main([str(out), "--models", "resnet18", "--reference", str(reference)]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["model"] == "resnet18" and not row["error"] and abs(float(row["ratio"]) - 1) < 0.01


def test_survey_transformers_smoke(monkeypatch, tmp_path):
    out = tmp_path / "families.csv"
    assert script("survey_transformers", monkeypatch).main([str(out), "--families", "bert"]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["family"] == "bert" and int(row["macs"]) > 0 and not row["error"]


def test_measure_torchvision_smoke(monkeypatch, tmp_path):
    out = tmp_path / "zoo.csv"
    assert script("measure_torchvision", monkeypatch).main([str(out), "--models", SMALL_TORCHVISION]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["model"] == SMALL_TORCHVISION and int(row["macs"]) > 0 and not row["error"]


def test_build_torchvision_reference_smoke(monkeypatch, tmp_path):
    out = tmp_path / "reference.csv"
    counted = REPO / "results" / "measure" / "torchvision.csv"
    argv = [str(out), "--counted", str(counted), "--models", SMALL_TORCHVISION]
    assert script("build_torchvision_reference", monkeypatch).main(argv) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["model"] == SMALL_TORCHVISION and float(row["macs_forward"]) > 0


# ---------------------------------------------------------------------------- background processes


def test_gpu_checks_dry_run(request):
    """Every step's command and arguments, run CPU-sized: the smoke runs of bench_step_rate.py,
    bench_overhead.py and study.sh (with the GPU study's ensemble overrides) are this dry run's steps."""
    finished = smoke(request)
    out, printed = finished.out, finished.proc.stderr
    for step in ("gpu_tests", "step_rate", "overhead", "study"):
        assert f"== {step} (dry run)" in printed, step
    assert " tests collected" in (out / "gpu_tests.log").read_text(), "pytest -m gpu selects the gpu tests"

    step_rate = rows(out / "step_rate.csv")
    header = (out / "step_rate.csv").read_text().splitlines()[0]
    assert "SMOKE RUN" in header, "a smoke run is never passed off as a measurement"
    runners = ["hand_eager", "harness_eager", "harness_graph", "harness_ensemble"]
    assert [r["runner"] for r in step_rate] == runners
    assert step_rate[2]["ran_as"] == "eager (fallback)", "graph mode falls back on the CPU, and says so"
    assert step_rate[3]["models"] == "2" and float(step_rate[3]["model_steps_per_s"]) > 0

    overhead = rows(out / "overhead.csv")
    assert [(r["pair"], r["condition"]) for r in overhead] == [
        ("0", "off"),
        ("0", "full"),
        ("median", "off"),
        ("median", "full"),
    ]
    assert float(overhead[1]["samples_per_s"]) > 0 and overhead[3]["ratio_to_off"]

    (study,) = (out / "study" / "results").iterdir()
    for name in ("README.md", "runs.csv", "machine.json", "fit/fits.csv"):
        assert (study / name).is_file(), name
    members = list(csv.DictReader((study / "runs.csv").open()))
    assert {r["seed"] for r in members} == {"0", "1", "2"}, "the seeds, trained together as one ensemble"


def test_bench_contention_smoke(request):
    table = rows(smoke(request).out / "c.csv")
    conditions = {(r["machine"], r["policy"]) for r in table}
    assert conditions == {("alone", "auto"), ("alone", "default"), ("loaded", "auto"), ("loaded", "default")}


def test_bench_store_smoke(request):
    out = smoke(request).out
    table = list(csv.DictReader((out / "store.csv").open()))
    assert {"collect", "load", "fit", "lookup (new config)"} <= {r["what"] for r in table}
    assert {r["records"] for r in table} >= {"0", "30"} and (out / "store.png").is_file()


def test_theory_smoke(request):
    out = smoke(request).out / "theory"
    assert (out / "runs.csv").is_file() and (out / "exponents.csv").is_file()
    assert (out / "fits" / "n_train_linear_expert" / "fits.csv").is_file()


def test_quickstart_smoke(request):
    finished = smoke(request)
    assert (finished.out / "runs" / "runs.parquet").is_file() and "model_width" in finished.proc.stdout


def test_compare_fits_smoke(request):
    printed = smoke(request).proc.stdout
    assert "theory_n_train_linear_expert: " in printed and "every fit identical" in printed


def test_reproduce_paper_smoke(request):
    finished = smoke(request)
    assert (finished.out / "paper" / "fits.csv").is_file() and (
        finished.out / "paper" / "report.md"
    ).is_file()
    assert "k [95% CI]" in finished.proc.stdout


def test_measure_torchvision_cli_smoke(request):
    (row,) = list(csv.DictReader((smoke(request).out / "cli.csv").open()))
    assert row["exit_code"] == "0" and int(row["macs"]) > 0 and row["timed"] == "1"


def test_bench_revisions_smoke(request):
    assert sorted(r["revision"] for r in rows(smoke(request).out / "r.csv")) == ["base", "head"]


def test_bench_startup_smoke(request):
    commands = {r["command"] for r in rows(smoke(request).out / "s.csv")}
    assert commands == {"harness train --help", "harness train trainer.epochs=abc"}


def test_gpu_checks_refuses_an_unknown_step(tmp_path):
    import subprocess

    proc = subprocess.run(
        [str(SCRIPTS / "gpu_checks.sh"), str(tmp_path / "out"), "turbo"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("gpu_checks.sh: unknown step 'turbo'; choose from")
    assert not (tmp_path / "out").exists()


def test_every_script_has_a_smoke_run():
    """A script added to scripts/ gets a smoke run (here or in tests/script_smokes.py) in the same change."""
    covered = {
        "bench_table.py": "the CSV writer of the benchmarks whose smoke runs are here",
        "slurm_cluster.sh": "tests/test_slurm.py",
        **dict.fromkeys(("bench_step_rate.py", "bench_overhead.py", "study.sh"), "gpu_checks.sh --dry-run"),
    }
    here = Path(__file__).read_text() + (Path(__file__).parent / "script_smokes.py").read_text()
    missing = [
        p.name
        for p in sorted(SCRIPTS.iterdir())
        if p.suffix in (".py", ".sh") and p.name not in covered and f'"{p.stem}' not in here
    ]
    assert not missing, f"scripts without a smoke run: {missing}; add one to tests/script_smokes.py"
