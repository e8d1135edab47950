"""harness.track and the Lightning / Hugging Face callbacks: real loops and trainers, tiny models on the CPU,
each writing one record that `harness collect` and `harness fit` read beside `harness train`'s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import harness
from harness import fit as fit_app
from harness.compute.flops import count_flops
from harness.errors import ConfigError
from harness.results import RunRecord, collect, load, read_record, write_record
from harness.settings import EnergySettings
from harness.tracking import Run

# codecarbon's start-up is left to the energy tests (as conf/debug does for harness train).
NO_CODECARBON = EnergySettings(codecarbon=False)


def _data(n: int = 256, features: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def _mlp(width: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(10, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))


def _train_plain(model: torch.nn.Module, x, y, run: Run, *, epochs: int = 2, batch: int = 32) -> int:
    """The user's own loop: SGD steps, evaluation paused each epoch; returns the samples it trained on."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trained = 0
    for _ in range(epochs):
        for start in range(0, len(x), batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.step(samples=len(xb))
            trained += len(xb)
        with run.paused(), torch.no_grad():
            error = (model(x).argmax(1) != y).float().mean()
        run.log(test_error=error, test_loss=loss.item(), accuracy=1 - error)
    return trained


def _others(root) -> None:
    """Records as `harness train` writes them: model mlp, 4 widths × 2 data sizes, on dataset toy."""
    for index, (width, n_train) in enumerate((w, n) for w in (8, 16, 32, 64) for n in (256, 1024)):
        params = 30 * width
        record = RunRecord(
            run_id=f"train{index}",
            status="completed",
            model="mlp",
            model_width=width,
            data="toy",
            n_train=n_train,
            seed=0,
            params=params,
            epochs=2.0,
            test_error=0.05 + 2 / params**0.5,
            network_operations=6.0 * params * n_train * 2,
        )
        write_record(root / f"train{index}", record)


def _fit_points(root, *overrides: str) -> dict[str, int]:
    """`harness fit results=root` as a plain function: the points of each fit (spec -> n)."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="harness.conf", version_base="1.3"):
        cfg = compose("fit", [f"results={root}", "parametric.enabled=false", *overrides])
    GlobalHydra.instance().clear()
    (analysis,) = fit_app.fit(cfg)
    return {fit.row["spec"]: fit.row["n"] for fit in analysis.fits}


def test_a_plain_loop_writes_a_record_that_collect_and_fit_read_with_harness_train_runs(tmp_path):
    root = tmp_path / "runs"
    _others(root)
    x, y = _data()
    torch.manual_seed(0)
    model = _mlp(16)
    example = x[:4]
    with harness.track(
        model,
        example_input=example,
        results_dir=root,
        name="mynet",
        data="toy",
        config={"width": 16, "n_train": len(x)},
        energy=NO_CODECARBON,
    ) as run:
        trained = _train_plain(model, x, y, run)

    record = run.record
    assert record is not None and run.run_dir is not None
    assert read_record(run.run_dir) == RunRecord.from_dict(json.loads((run.run_dir / "run.json").read_text()))
    assert record.status == "completed" and record.error is None
    assert record.flops_forward == count_flops(_mlp(16), example).flops_per_sample
    assert record.samples_seen == trained == 2 * len(x) and record.steps == 16
    assert record.epochs_completed == 2.0, "samples seen / the config's n_train"
    assert record.network_operations == pytest.approx(record.flops_forward * 3 * trained)
    assert record.flops_train_method == "flops_forward × fp_bp_ratio × epochs × n_train"
    assert record.model == "mynet" and record.model_width == 16 and record.trainer_mode == "track"
    assert record.config == {"width": 16, "n_train": 256} and record.config_hash
    assert record.train_time_s > 0 and record.eval_time_s > 0 and record.hardware_burden > 0
    assert record.energy_method_cpu == "disabled" and record.energy_method_gpu == "not_used"
    assert record.contended is not None and record.cpu_time_s is not None, "contention measured"
    assert record.versions["torch"] == torch.__version__, "provenance"
    assert record.test_error == pytest.approx(record.best_test_error, abs=0.5)
    assert set(record.metrics) == {"accuracy"} and record.test_loss is not None

    frame, parquet, _ = collect(root)  # harness collect's table
    assert parquet is not None and len(frame) == 9 and set(frame["trainer_mode"].dropna()) == {"track"}
    assert frame.loc[frame["model"] == "mynet", "config.width"].item() == 16
    # 8 harness-train configurations and this run: every spec fits all 9.
    assert set(_fit_points(root).values()) == {9}


def test_an_exception_in_the_block_leaves_a_failed_record_and_is_raised(tmp_path):
    x, y = _data(64)
    model = _mlp(8)
    track = harness.track(model, example_input=x[:2], results_dir=tmp_path, energy=NO_CODECARBON)
    with pytest.raises(ValueError, match="bad batch"), track as run:
        run.step(samples=32)
        raise ValueError("bad batch")
    (path,) = tmp_path.rglob("run.json")
    record = read_record(path)
    assert record.status == "failed" and record.error == "ValueError: bad batch"
    assert record.samples_seen == 32 and record.model == "Sequential" and record.flops_forward > 0


def test_an_interrupt_leaves_an_interrupted_record(tmp_path):
    model = _mlp(8)
    track = harness.track(model, results_dir=tmp_path, name="stopped", energy=NO_CODECARBON)
    with pytest.raises(KeyboardInterrupt), track as run:
        run.step(samples=8)
        raise KeyboardInterrupt("SIGTERM")
    record = read_record(next(tmp_path.rglob("run.json")))
    assert record.status == "interrupted" and "SIGTERM" in record.error and record.samples_seen == 8
    assert record.flops_forward is None, "no example_input: FLOPs not counted, not guessed"


SIGNALLED_LOOP = """
import sys, torch, harness
from harness.settings import EnergySettings
model = torch.nn.Linear(4, 2)
with harness.track(model, example_input=torch.randn(1, 4), results_dir=sys.argv[1],
                   energy=EnergySettings(enabled=False)) as run:
    run.step(samples=4)
    print("training", flush=True)
    while True:
        run.step(samples=4)
"""


def test_sigterm_leaves_an_interrupted_record(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", SIGNALLED_LOOP, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == b"training\n"  # handshake: in the loop
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"KeyboardInterrupt: SIGTERM" in err
    record = read_record(next(tmp_path.rglob("run.json")))
    assert record.status == "interrupted" and record.error.startswith("interrupted (SIGTERM) at step ")
    assert record.samples_seen >= 4 and record.flops_forward == 2 * 4 * 2


CRASHING_TRAINER = """
import sys, torch, transformers
from harness.integrations.transformers import HarnessCallback
from harness.settings import EnergySettings
config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=8)
model = transformers.GPT2LMHeadModel(config)
class Tokens(torch.utils.data.Dataset):
    reads = 0
    def __len__(self):
        return 32
    def __getitem__(self, i):
        self.reads += 1
        if self.reads > 16:  # the third batch of 8
            raise ValueError("bad sample " + str(i))
        ids = torch.full((8,), i % 50)
        return {"input_ids": ids, "labels": ids}
args = transformers.TrainingArguments(output_dir=sys.argv[2], per_device_train_batch_size=8,
    save_strategy="no",
    logging_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
callback = HarnessCallback(sys.argv[1], energy=EnergySettings(enabled=False))
transformers.Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[callback]).train()
"""


def test_hf_trainer_that_crashes_leaves_a_failed_record(tmp_path):
    # The Trainer tells callbacks nothing of an exception inside train(): the process ended with no record.
    pytest.importorskip("accelerate")
    pytest.importorskip("transformers")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_TRAINER, str(tmp_path / "runs"), str(tmp_path / "hf")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0 and "ValueError: bad sample" in proc.stderr
    record = read_record(next((tmp_path / "runs").rglob("run.json")))
    assert record.status == "failed" and record.error.startswith("ValueError: bad sample")
    assert record.samples_seen >= 8 and record.flops_forward > 0  # the loader reads a batch ahead


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "a/b"}, "name='a/b' is not a run name"),
        ({"config": ["width", 64]}, "is not a dict of named settings"),
        ({"precision": "fp8"}, "precision='fp8' is unknown"),
        ({"n_train": 0}, "n_train=0 is not a positive whole number"),
        ({"example_input": torch.randn(2, 3)}, "example_input does not fit Sequential"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message) as caught:  # noqa: SIM117 (the track itself must raise)
        with harness.track(_mlp(8), results_dir=tmp_path / "runs", energy=NO_CODECARBON, **options):
            pytest.fail("the block must not run")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "runs").exists()


def test_log_refuses_what_is_not_a_number(tmp_path):
    message = r"run.log\(test_error='low'\): a metric is a number"
    with (
        harness.track(_mlp(8), results_dir=tmp_path, energy=NO_CODECARBON) as run,
        pytest.raises(ConfigError, match=message),
    ):
        run.log(test_error="low")


def test_step_neither_synchronizes_nor_reads_the_clock(tmp_path, monkeypatch):
    """The steps add to counters only: device syncs and clock reads happen at the window edges."""
    calls = []
    monkeypatch.setattr("harness.training.clock.synchronize", lambda device: calls.append(device))
    with harness.track(_mlp(8), results_dir=tmp_path, energy=EnergySettings(enabled=False)) as run:
        at_start = len(calls)
        for _ in range(1000):
            run.step(samples=4, tokens=64)
        assert len(calls) == at_start
    assert run.record is not None and run.record.samples_seen == 4000 and run.record.tokens_seen == 64000


def test_keyword_inputs_and_tokens_count_as_a_language_model(tmp_path):
    class TinyLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.head = torch.nn.Embedding(50, 16), torch.nn.Linear(16, 50)

        def forward(self, input_ids, scale: float = 1.0):
            return self.head(self.embed(input_ids) * scale)

    model, ids = TinyLM(), torch.randint(0, 50, (2, 12))
    example = {"input_ids": ids, "scale": 2.0}
    with harness.track(model, example_input=example, results_dir=tmp_path, energy=NO_CODECARBON) as run:
        run.step(samples=2, tokens=24)
    record = run.record
    assert record is not None
    assert record.flops_forward == count_flops(model, example).flops_per_sample
    assert record.flops_forward == 2 * 12 * 16 * 50, "the head's MACs per token, × 2, × 12 tokens"
    assert record.flops_forward_per_token == 2 * 16 * 50 and record.tokens_seen == 24


def test_importing_harness_imports_neither_integration_library_nor_torch():
    code = (
        "import sys, harness, harness.integrations; "
        "print(sorted(m for m in ('torch', 'lightning', 'transformers') if m in sys.modules))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------- Lightning


def test_loops_that_name_no_dataset_are_fitted_as_one_group(tmp_path):
    # A user's first try passes no data=: the record's data is null, and the fit must still find its runs.
    root = tmp_path / "runs"
    x, y = _data()
    for width in (4, 8, 16):
        torch.manual_seed(0)
        model = _mlp(width)
        config = {"width": width, "n_train": len(x)}
        with harness.track(
            model, example_input=x[:1], results_dir=root, config=config, energy=NO_CODECARBON
        ) as run:
            _train_plain(model, x, y, run)
        assert run.record is not None and run.record.data is None
    assert set(_fit_points(root).values()) == {3}


def test_lightning_fit_writes_a_record_that_fit_reads(tmp_path):
    pytest.importorskip("lightning.pytorch")
    import lightning.pytorch as pl

    from harness.integrations.lightning import HarnessCallback

    class Classifier(pl.LightningModule):
        def __init__(self, width: int = 16):
            super().__init__()
            self.save_hyperparameters()
            self.net = _mlp(width)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_error", (self(x).argmax(1) != y).float().mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    root = tmp_path / "runs"
    _others(root)
    x, y = _data(100)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    torch.manual_seed(0)
    module = Classifier()
    callback = HarnessCallback(root, metric="test_error", data="toy", n_train=100, energy=NO_CODECARBON)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers, logging intervals and srun
        trainer = pl.Trainer(
            max_epochs=2,
            callbacks=[callback],
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(module, loader, loader)

    record = callback.record
    assert record is not None and record.status == "completed" and record.trainer_mode == "lightning"
    assert record.flops_forward == count_flops(Classifier().net, x[:16]).flops_per_sample
    assert record.samples_seen == 200 and record.steps == 14 and record.epochs_completed == 2.0
    assert record.config == {"width": 16}, "the module's hyperparameters"
    assert record.test_error is not None and record.eval_time_s > 0, "validation, timed apart"
    assert record.model == "Classifier" and record.model_width == 16
    assert set(_fit_points(root).values()) == {9}


def test_an_exception_in_lightning_fit_leaves_a_failed_record(tmp_path):
    pytest.importorskip("lightning.pytorch")
    import lightning.pytorch as pl

    from harness.integrations.lightning import HarnessCallback

    class Broken(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp(8)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            if batch_idx == 2:
                raise RuntimeError("loss exploded")
            return self.net(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x, y = _data(64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    callback = HarnessCallback(tmp_path, metric=None, energy=NO_CODECARBON)
    with pytest.raises(RuntimeError, match="loss exploded"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = pl.Trainer(
            max_epochs=1, callbacks=[callback], accelerator="cpu", logger=False, enable_progress_bar=False
        )
        trainer.fit(Broken(), loader)
    record = read_record(next(tmp_path.rglob("run.json")))
    assert record.status == "failed" and record.error == "RuntimeError: loss exploded"
    assert record.samples_seen == 32, "the two batches that finished"


def test_a_misspelt_callback_option_is_refused_when_the_callback_is_made():
    pytest.importorskip("lightning.pytorch")
    from harness.integrations.lightning import HarnessCallback

    with pytest.raises(
        ConfigError, match="HarnessCallback has no option n_trian; the options are results_dir"
    ):
        HarnessCallback("runs", n_trian=100)


# ------------------------------------------------------------------------------------------ Hugging Face


def test_hf_trainer_writes_a_record_with_tokens_and_total_flos(tmp_path):
    pytest.importorskip("accelerate")
    transformers = pytest.importorskip("transformers")
    from harness.integrations.transformers import TOTAL_FLOS_METRIC, HarnessCallback

    seq, n_train = 16, 48
    config = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=seq, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)

    class Tokens(torch.utils.data.Dataset):
        def __init__(self, n: int):
            self.ids = torch.randint(0, 100, (n, seq), generator=torch.Generator().manual_seed(n))

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "labels": self.ids[i]}

    root = tmp_path / "runs"
    _others(root)
    callback = HarnessCallback(
        root, metric="eval_loss", data="toy", config={"n_layer": 2}, energy=NO_CODECARBON
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        per_device_train_batch_size=8,
        num_train_epochs=1,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(n_train), eval_dataset=Tokens(8), callbacks=[callback]
    )
    trainer.train()

    record = callback.record
    assert record is not None and record.status == "completed" and record.trainer_mode == "hf_trainer"
    ids = torch.randint(0, 100, (8, seq))
    counted = count_flops(model, {"input_ids": ids, "use_cache": False})
    assert record.flops_forward == counted.flops_per_sample
    assert record.samples_seen == n_train and record.tokens_seen == n_train * seq and record.steps == 6
    assert record.flops_forward_per_token == record.flops_forward / seq
    assert record.metrics["eval_loss"] > 0 and record.eval_time_s > 0
    # The Trainer's estimate: 6 × non-embedding parameters × tokens; ours counts the forward pass itself.
    total_flos = record.metrics[TOTAL_FLOS_METRIC]
    assert total_flos == 6 * model.num_parameters(exclude_embeddings=True) * n_train * seq
    assert record.network_operations == pytest.approx(3 * record.flops_forward * n_train)
    assert record.network_operations > total_flos, "the LM head and attention scores are forward work too"
    # Read beside harness train's runs: the run has no test_error, so the fit drops it and says why.
    frame = load(root)
    assert len(frame) == 9 and frame["metrics.eval_loss"].notna().sum() == 1
    assert set(_fit_points(root).values()) == {8}
