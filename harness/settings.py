"""Every config group as one frozen, typed object, read and checked once from the composed config.

conf/ holds the defaults a user reads and overrides; each class here restates them as Python defaults, so
that code which builds settings directly (tests, notebooks, other tools) runs exactly what the CLI runs.
tests/test_settings.py checks, key by key, that each group's default file and its class agree.

Library code receives these objects and never reads a DictConfig: a key's type, default and range are
written once, here. `build` reads a config node into a class by its type annotations (one-line errors for a
value of the wrong type); each class's `__post_init__` checks ranges and combinations; `field_type` answers
preflight's question (does this key take a number?) from the same annotations.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from harness.errors import ConfigError

# ------------------------------------------------------------------------------------ reading a node


class FromConfig:
    """`from_config(node)`: the settings a config node (a DictConfig or a plain mapping) describes.

    GROUP names the node in error messages; a STRICT class refuses keys it has no field for (Hydra's struct
    mode already refuses them on the command line; this catches them in a mapping built by hand)."""

    GROUP: ClassVar[str] = ""
    STRICT: ClassVar[bool] = True

    @classmethod
    def from_config(cls, node: Any = None):
        return cls.read(node, cls.GROUP)

    @classmethod
    def read(cls, node: Any, prefix: str):
        """The settings `node` describes, `prefix` naming it in errors (as a group of its own or nested)."""
        return build(cls, node, prefix)


def plain(node: Any) -> Any:
    """A config node as plain Python (dicts and lists, interpolations resolved); anything else as it is."""
    from omegaconf import OmegaConf  # here, so that building settings from dicts never imports OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def build(cls: Any, node: Any, prefix: str):
    """An instance of the dataclass `cls` from `node`; a key the node lacks keeps the class's default.

    A field may read a dotted key of the node (`metadata={"key": "a.b"}`): how fit's flat settings read its
    nested YAML."""
    values = plain(node) or {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix} must be a group of settings, got {values!r}")
    hints = get_type_hints(cls)
    chosen, read = {}, set()
    for item in fields(cls):
        key = item.metadata.get("key", item.name)
        found, value = _lookup(values, key)
        if found:
            read.add(key.split(".")[0])
            chosen[item.name] = coerce(value, hints[item.name], _dotted(prefix, key))
    unknown = sorted(set(values) - read)
    if unknown and cls.STRICT:
        known = ", ".join(sorted(item.name for item in fields(cls)))
        raise ConfigError(f"unknown {prefix} setting(s): {', '.join(unknown)}; known: {known}")
    return cls(**chosen)


def _lookup(values: Mapping, key: str) -> tuple[bool, Any]:
    for part in key.split("."):
        if not isinstance(values, Mapping) or part not in values:
            return False, None
        values = values[part]
    return True, values


def _dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


def coerce(value: Any, hint: Any, name: str) -> Any:
    """`value` as the annotation `hint` says, or a one-line ConfigError naming the key `name`.

    Booleans are not numbers here (bool is an int subclass) and 2.5 is not an integer: either would
    silently change a run. Lists become tuples and mappings plain dicts."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return coerce(value, option, name)
            except ConfigError:
                continue
        wanted = " or ".join(_describe(option) for option in options)
        null = " or null" if type(None) in args else ""
        raise ConfigError(f"{name} must be {wanted}{null}, got {value!r}")
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(f"{name} must be {_describe(hint)}, got {value!r}")
    if isinstance(hint, type) and issubclass(hint, FromConfig):
        return hint.read(value, name)
    if is_dataclass(hint):
        return build(hint, value, name)
    if hint is Any:
        return value
    if hint in _KINDS:
        return _scalar(value, hint, name)
    if origin in (tuple, list, Sequence) and isinstance(value, list | tuple):
        return tuple(coerce(v, args[0] if args else Any, f"{name}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) and isinstance(value, Mapping):
        inner = args[1] if args else Any
        return {str(k): coerce(v, inner, f"{name}.{k}") for k, v in value.items()}
    raise ConfigError(f"{name} must be {_describe(hint)}, got {value!r}")


def _scalar(value: Any, hint: type, name: str) -> Any:
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is str:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, int if hint is int else int | float) and not isinstance(value, bool)
    if not ok:
        example = {bool: "true or false", int: "a whole number", float: "a number", str: "a word"}[hint]
        raise ConfigError(f"{name} must be {_KINDS[hint]}, got {value!r}; set it to {example}")
    return float(value) if hint is float else value


def _describe(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return " or ".join(repr(a).lower() if isinstance(a, bool) else str(a) for a in get_args(hint))
    if hint in _KINDS:
        return _KINDS[hint]
    origin = get_origin(hint)
    if origin in (tuple, list, Sequence):
        return "a list"
    if origin in (dict, Mapping) or is_dataclass(hint):
        return "a group of settings"
    return str(hint)


def field_type(cls: Any, key: str) -> Any | None:
    """The annotation of the dotted `key` under the settings class `cls` (nested groups followed); None
    when no field reads that key, or when it lies in an open mapping (an optimizer's or a model's keys)."""
    hints = get_type_hints(cls)
    for item in fields(cls):
        own = item.metadata.get("key", item.name)
        if key == own:
            return hints[item.name]
        if key.startswith(own + "."):
            inner = without_none(hints[item.name])
            return field_type(inner, key[len(own) + 1 :]) if is_dataclass(inner) else None
    return None


def without_none(hint: Any) -> Any:
    """X for `X | None`; the hint itself otherwise."""
    if get_origin(hint) in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return hint


def kind(hint: Any) -> str | None:
    """'boolean' or 'number' when a key of that annotation takes one (null allowed), else None."""
    hint = without_none(hint)
    if hint is bool:
        return "boolean"
    if hint in (int, float):
        return "number"
    return None


def label_of(name: Any, target: Any) -> str:
    """What names a model or a dataset in records, run directories and fits: its `name` when given, else
    the last component of its `_target_` (`mynet.MyNet` -> `MyNet`)."""
    if name:
        return str(name)
    if target:
        return str(target).rpartition(".")[2]
    return "?"


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _one_of(value: Any, choices: Sequence[str], name: str) -> None:
    _require(
        value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}; pick one of those"
    )


# ------------------------------------------------------------------------------------ trainer


TRAINER_MODES = ("eager", "closed_form", "graph", "ensemble")
ENSEMBLE_MODES = ("ensemble",)
# Modes that can wrap the model in torch.compile (graph capture and vmap take the step as it is).
COMPILE_MODES = ("eager",)
PRECISIONS = ("fp32", "bf16", "fp16")
DATA_ORDERS = ("own", "shared")
SCHEDULES = ("constant", "cosine", "linear")
SOLVERS = ("least_squares", "lasso")
ALPHA_RULES = ("fixed", "universal")


@dataclass(frozen=True)
class ScheduleSettings(FromConfig):
    """trainer.schedule: the learning-rate factor over the run's steps."""

    GROUP: ClassVar[str] = "trainer.schedule"

    name: str = "cosine"
    warmup_fraction: float = 0.0

    def __post_init__(self) -> None:
        _one_of(self.name, SCHEDULES, "trainer.schedule.name")
        _require(
            0.0 <= self.warmup_fraction < 1.0,
            f"trainer.schedule.warmup_fraction must be in [0, 1), got {self.warmup_fraction}",
        )


def _sgd() -> Mapping[str, Any]:
    return MappingProxyType(
        {
            "_target_": "torch.optim.SGD",
            "_partial_": True,
            "lr": 0.05,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5.0e-4,
        }
    )


@dataclass(frozen=True)
class TrainerSettings(FromConfig):
    """The `trainer` group (conf/trainer/default.yaml documents every key; the closed-form keys are in
    conf/trainer/least_squares.yaml and lasso.yaml)."""

    GROUP: ClassVar[str] = "trainer"

    epochs: float = 20.0
    max_steps: int | None = None
    batch_size: int = 64
    device: str = "auto"
    cpu_threads: Literal["auto"] | int = "auto"
    precision: str = "fp32"
    mode: str = "eager"
    ensemble_size: int = 1
    ensemble_data_order: str = "own"
    drop_last: bool | None = None
    channels_last: bool = False
    compile: bool = False
    timing_warmup_steps: int = 1
    eval_every_steps: int | None = None
    eval_batch_size: int = 1024
    log_every_steps: int = 50
    target_error: float | None = None
    grad_clip_norm: float | None = None
    deterministic: bool = False
    # Any torch.optim class, as Hydra instantiates it (a partial: the loop passes the parameters).
    optimizer: Mapping[str, Any] = field(default_factory=_sgd)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    # trainer.mode=closed_form only
    solver: str | None = None
    alpha: float | None = None
    alpha_rule: str = "universal"
    max_iter: int = 10000
    tol: float = 1.0e-4

    def __post_init__(self) -> None:
        _one_of(self.mode, TRAINER_MODES, "trainer.mode")
        _one_of(self.precision, PRECISIONS, "trainer.precision")
        _one_of(self.ensemble_data_order, DATA_ORDERS, "trainer.ensemble_data_order")
        _one_of(self.alpha_rule, ALPHA_RULES, "trainer.alpha_rule")
        _require(self.batch_size > 0, f"trainer.batch_size must be a positive integer, got {self.batch_size}")
        _require(self.epochs > 0, f"trainer.epochs must be positive, got {self.epochs}")
        for name in ("max_steps", "eval_every_steps"):
            value = getattr(self, name)
            _require(
                value is None or value > 0, f"trainer.{name} must be a positive integer or null, got {value}"
            )
        _require(
            self.eval_batch_size > 0, f"trainer.eval_batch_size must be positive, got {self.eval_batch_size}"
        )
        _require(
            self.timing_warmup_steps >= 0,
            f"trainer.timing_warmup_steps must be 0 or more, got {self.timing_warmup_steps}",
        )
        _require(
            self.cpu_threads == "auto" or self.cpu_threads >= 1,
            f"trainer.cpu_threads={self.cpu_threads} is not a thread count; use auto or a positive integer",
        )
        _require(
            self.ensemble_size >= 1,
            f"trainer.ensemble_size must be a positive integer, got {self.ensemble_size}",
        )
        _require(
            self.ensemble_size == 1 or self.mode in ENSEMBLE_MODES,
            f"trainer.ensemble_size={self.ensemble_size} needs trainer.mode=ensemble (got trainer.mode="
            f"{self.mode}); add trainer.mode=ensemble or drop ensemble_size",
        )
        _require(
            not self.compile or self.mode in COMPILE_MODES,
            f"trainer.compile=true works with trainer.mode=eager only (got {self.mode}, whose step is "
            "captured or vmapped as it is); drop trainer.compile or use trainer.mode=eager",
        )
        if self.mode == "closed_form":
            _one_of(self.solver, SOLVERS, "trainer.solver")
        if self.solver == "lasso":
            _require(
                self.alpha is not None and self.alpha > 0,
                f"trainer.alpha must be a positive number, got {self.alpha!r}; e.g. trainer.alpha=0.5",
            )

    @property
    def members(self) -> int:
        """How many models one job trains: ensemble_size in an ensemble mode, else 1."""
        return self.ensemble_size if self.mode in ENSEMBLE_MODES else 1

    def drop_last_for(self, static_shapes: bool) -> bool:
        """drop_last, where null means: drop the smaller last batch only where shapes must be static."""
        return static_shapes if self.drop_last is None else self.drop_last


# ------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class DataSettings(FromConfig):
    """The `data` group: which loader (`_target_`, a built-in of harness.data.sources or a user's callable),
    its own arguments (`arguments`: every other key of the group; the settings of each dataset live beside
    its loader, as the loader's keyword parameters), and the harness's knobs that apply to every dataset:
    the training subset (fraction, n_train, subsample_seed), standardization and, for a map-style Dataset,
    the DataLoader's worker processes. The defaults are the default dataset's (conf/data/digits.yaml)."""

    GROUP: ClassVar[str] = "data"

    target: str = field(default="harness.data.sources.digits", metadata={"key": "_target_"})
    name: str | None = "digits"  # null: named after the target's last component
    fraction: float = 1.0
    n_train: int | None = None  # its upper bound depends on the dataset: load_dataset checks it
    subsample_seed: int = 0
    normalize: bool = True
    loader_workers: int = 0  # map-style Datasets only: DataLoader worker processes (0: in this process)
    # The validation split: this share of the training pool held out before subsampling, class-balanced,
    # drawn with val_seed (fixed: the same split for every run, whatever its seed); 0: none, unless the
    # loader returns its own `val`
    val_fraction: float = 0.0
    val_seed: int = 0
    arguments: Mapping[str, Any] = field(default_factory=lambda: {"test_fraction": 0.2})  # digits' own

    @classmethod
    def read(cls, node: Any, prefix: str):
        """The harness's own keys into fields; all others into `arguments`, for the loader."""
        values = plain(node) or {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"{prefix} must be a group of settings, got {values!r}")
        if values.get("_target_") is None:
            raise ConfigError(
                "data._target_ is not set; choose a dataset (data=digits) or give your loader: "
                "data=custom data._target_=pkg.module.make_data"
            )
        # The harness's own keys are this class's fields (by their config key); every other key of the group
        # is an argument of the dataset's loader, checked against the loader's own signature.
        keys = {f.metadata.get("key", f.name) for f in fields(cls) if f.name != "arguments"}
        own = {key: value for key, value in values.items() if key in keys}
        arguments = {key: value for key, value in values.items() if key not in keys}
        return build(cls, {**own, "arguments": arguments}, prefix)

    def __post_init__(self) -> None:
        _require(
            0.0 < self.fraction <= 1.0,
            f"data.fraction must be in (0, 1], got {self.fraction}; use e.g. 0.1 for 10% of the training set",
        )
        # numpy seeds must be non-negative and at most 32 bits.
        _require(
            0 <= self.subsample_seed < 2**32,
            f"data.subsample_seed must be in [0, 2**32), got {self.subsample_seed}; use a non-negative seed",
        )
        _require(
            0.0 <= self.val_fraction < 1.0,
            f"data.val_fraction must be in [0, 1), got {self.val_fraction}; use e.g. 0.1 to hold out 10% of "
            "the training pool for validation, or 0 for none",
        )
        _require(
            0 <= self.val_seed < 2**32,
            f"data.val_seed must be in [0, 2**32), got {self.val_seed}; use a non-negative seed",
        )
        _require(
            self.loader_workers >= 0,
            f"data.loader_workers must be 0 or more, got {self.loader_workers}; 0 loads in this process",
        )

    @property
    def label(self) -> str:
        """What names the dataset in records and run directories: data.name, else the target's last part."""
        return label_of(self.name, self.target)

    @property
    def seeds(self) -> dict[str, int]:
        """The data's seeds for the record: the subsample's, and any seed the loader takes (`*seed`)."""
        own = {
            key: value
            for key, value in self.arguments.items()
            if key.endswith("seed") and isinstance(value, int) and not isinstance(value, bool)
        }
        held_out = {"val_seed": self.val_seed} if self.val_fraction > 0 else {}
        return {"subsample_seed": self.subsample_seed, **held_out, **own}


# ------------------------------------------------------------------------------------ measure, hardware


@dataclass(frozen=True)
class MeasureSettings(FromConfig):
    """The `measure` group: what is recorded beside training."""

    GROUP: ClassVar[str] = "measure"

    learning_curve: bool = True
    flops: bool = True
    strict_flops: bool = True
    fp_bp_ratio: float = 3.0

    def __post_init__(self) -> None:
        _require(self.fp_bp_ratio > 0, f"measure.fp_bp_ratio must be positive, got {self.fp_bp_ratio}")


@dataclass(frozen=True)
class HardwareSettings(FromConfig):
    """The `hardware` group: a peak FLOP/s per processor that overrides the table (null: look it up)."""

    GROUP: ClassVar[str] = "hardware"

    peak_flops: float | None = None

    def __post_init__(self) -> None:
        _require(
            self.peak_flops is None or (math.isfinite(self.peak_flops) and self.peak_flops > 0),
            f"hardware.peak_flops={self.peak_flops} must be a positive FLOP/s figure, or null for the table",
        )


# ------------------------------------------------------------------------------------ energy

TRACKING_MODES = ("machine", "process")
US_PRICE_SOURCE = (
    "US EIA Electric Power Monthly, Table 5.6.A, national average commercial price 14.6 cents/kWh, as "
    "transcribed by energypricestoday.com/data/sources/electricity-prices.json (updated 2026-04-26)"
)


@dataclass(frozen=True)
class EnergySettings(FromConfig):
    """The `energy` group: what to measure and the conversion factors to apply (conf/energy/default.yaml).

    Every price or intensity the user supplies must come with its source string: a number without
    provenance would end up in the record looking like a measurement."""

    GROUP: ClassVar[str] = "energy"

    enabled: bool = True
    sample_hz: float = 10.0
    save_timeline: bool = True
    counter_update_s: float = 0.1
    codecarbon: bool = True
    country_iso_code: str = "USA"
    region: str | None = None
    tracking_mode: str = "machine"
    measure_power_secs: float = 10.0
    force_cpu_power_w: float | None = None
    force_ram_power_w: float | None = None
    pue: float = 1.0
    carbon_intensity_g_per_kwh: float | None = None
    carbon_intensity_source: str | None = None
    electricity_price_usd_per_kwh: float | None = 0.146
    electricity_price_source: str | None = US_PRICE_SOURCE
    cloud_prices: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "country_iso_code", str(self.country_iso_code).upper())
        _at_least(self.sample_hz, "sample_hz", 0.0, allow_equal=True)
        _at_least(self.counter_update_s, "counter_update_s", 0.0)
        _at_least(self.measure_power_secs, "measure_power_secs", 0.0)
        _at_least(self.pue, "pue", 1.0, allow_equal=True)
        for name in ("force_cpu_power_w", "force_ram_power_w"):
            if getattr(self, name) is not None:
                _at_least(getattr(self, name), name, 0.0)
        _require(
            self.tracking_mode in TRACKING_MODES,
            f"energy.tracking_mode={self.tracking_mode} is unknown; use one of {', '.join(TRACKING_MODES)}",
        )
        _require(
            len(self.country_iso_code) == 3,
            f"energy.country_iso_code={self.country_iso_code} is not a 3-letter ISO code; "
            "use e.g. USA, FRA, DEU",
        )
        _sourced(self, "carbon_intensity_g_per_kwh", "carbon_intensity_source")
        _sourced(self, "electricity_price_usd_per_kwh", "electricity_price_source")


def _at_least(value: float, name: str, minimum: float, *, allow_equal: bool = False) -> None:
    ok = math.isfinite(value) and (value > minimum or (allow_equal and value == minimum))
    bound = f">= {minimum}" if allow_equal else f"> {minimum}"
    _require(ok, f"energy.{name}={value} must be a finite number {bound}")


def _sourced(settings: EnergySettings, value_name: str, source_name: str) -> None:
    value = getattr(settings, value_name)
    if value is None:
        return
    _at_least(value, value_name, 0.0, allow_equal=True)
    source = getattr(settings, source_name)
    _require(
        isinstance(source, str) and bool(source.strip()),
        f"energy.{value_name}={value} needs energy.{source_name}: say where the number comes from",
    )


# ------------------------------------------------------------------------------------ one training job


@dataclass(frozen=True)
class RunSettings(FromConfig):
    """conf/train.yaml: one `harness train` job, its groups included. The model group stays a mapping: its
    keys are the constructor's arguments, which the constructor checks."""

    STRICT: ClassVar[bool] = False  # labels (+tags.*) and sweep-only groups may sit beside these

    seed: int = 0
    results_dir: str = field(default="results/runs", metadata={"key": "paths.results_dir"})
    resume: bool = True
    fail_fast: bool = False
    claim_wait: bool = False
    claim_stale_s: float = 300.0
    model: Mapping[str, Any] = field(default_factory=dict)
    data: DataSettings = field(default_factory=DataSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    energy: EnergySettings = field(default_factory=EnergySettings)

    def __post_init__(self) -> None:
        _require(
            self.claim_stale_s > 0,
            f"claim_stale_s={self.claim_stale_s:g} must be positive; the default is 300 (seconds)",
        )


# ------------------------------------------------------------------------------------ harness measure


@dataclass(frozen=True)
class LatencySettings(FromConfig):
    """measure.yaml's `latency`: inference timing per batch size, bounded in time."""

    GROUP: ClassVar[str] = "latency"

    batch_sizes: Sequence[int] = (1, 64)
    warmup_iters: int = 5
    min_time_s: float = 0.5
    max_time_s: float | None = 60.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _require(
            all(b > 0 for b in self.batch_sizes),
            f"latency.batch_sizes must be positive, got {self.batch_sizes}",
        )
        _require(self.warmup_iters >= 0, f"latency.warmup_iters must be 0 or more, got {self.warmup_iters}")
        _require(
            self.min_time_s >= 0,
            f"latency.min_time_s must be 0 or more seconds, got {self.min_time_s}",
        )
        _require(
            self.max_time_s is None or self.max_time_s > 0,
            f"latency.max_time_s={self.max_time_s} must be a positive number of seconds or null; e.g. 60",
        )


@dataclass(frozen=True)
class InferenceEnergySettings(FromConfig):
    """measure.yaml's `energy`: energy per inference over a window of back-to-back passes (GPU only)."""

    GROUP: ClassVar[str] = "energy"

    enabled: bool = True
    min_window_s: float = 2.0

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.min_window_s) and self.min_window_s > 0,
            f"energy.min_window_s={self.min_window_s} must be a positive number of seconds; e.g. 2.0",
        )


@dataclass(frozen=True)
class ModelMeasureSettings(FromConfig):
    """conf/measure.yaml: `harness measure`, one model's compute, latency and energy per inference. Of the
    trainer group it uses the device, the precision and the CPU thread policy."""

    STRICT: ClassVar[bool] = False  # the model group is its constructor's arguments

    model: Mapping[str, Any] = field(default_factory=dict)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    input_shape: Sequence[int] = (1, 1, 8, 8)
    # named keyword inputs instead of input_shape's one tensor: name -> {shape, dtype, low, high}
    inputs: Mapping[str, Any] = field(default_factory=dict)
    batch_dim: int | None = None
    num_classes: int = 10
    strict: bool = True
    check_torch: bool = False
    attention_causal: str = "full"
    table_depth: int = 2
    output: str = "table"
    error: float | None = None
    place_on: Sequence[str] = ("imagenet", "torchvision")
    latency: LatencySettings = field(default_factory=LatencySettings)
    energy: InferenceEnergySettings = field(default_factory=InferenceEnergySettings)

    def __post_init__(self) -> None:
        _one_of(self.output, ("table", "json"), "output")
        _one_of(self.attention_causal, ("full", "half"), "attention_causal")
        _require(self.num_classes >= 1, f"num_classes must be a positive integer, got {self.num_classes}")
        _require(self.table_depth >= 0, f"table_depth must be 0 or more, got {self.table_depth}")


# ------------------------------------------------------------------------------------ harness fit

# frontier= values and the point sets each one fits: every configuration, the compute-efficient frontier.
ALL_POINTS, FRONTIER = "all", "frontier"
_FRONTIER_MODES = MappingProxyType({False: (ALL_POINTS,), True: (FRONTIER,), "both": (ALL_POINTS, FRONTIER)})
# The paper's target errors per benchmark (conf/fit.yaml explains each).
_PAPER_TARGETS = MappingProxyType(
    {
        "default": (0.05, 0.02, 0.01),
        "imagenet": (0.05, 0.01),
        "coco": (0.3, 0.1),
        "squad": (0.05, 0.01),
        "conll": (0.03, 0.01),
        "wmt_en_de": (0.6, 0.5),
        "wmt_en_fr": (0.5, 0.4),
    }
)


@dataclass(frozen=True)
class FitSettings(FromConfig):
    """Every choice of an analysis (conf/fit.yaml); the defaults are the paper's where it made one."""

    STRICT: ClassVar[bool] = False  # fit.yaml also holds the command's own keys (reference, out, plots, ...)

    level: float = 0.95
    quantile: float = 0.1
    year_base: int = 2012
    # target errors per benchmark (1 - score for score benchmarks); `runs` and `default` as fallbacks
    targets: Mapping[str, Sequence[float]] = field(
        default_factory=lambda: dict(_PAPER_TARGETS), metadata={"key": "extrapolation.targets"}
    )
    # fixed (slope, intercept) of log10(hardware_burden) ~ log10(network_operations) per benchmark
    imputation: Mapping[str, Sequence[float]] = field(default_factory=lambda: {"coco": (0.8944, 2.7356)})
    flop_per_usd: float = field(default=6.874e16, metadata={"key": "extrapolation.flop_per_usd"})
    flop_per_lb_co2: float = field(default=3.498e17, metadata={"key": "extrapolation.flop_per_lb_co2"})
    holdout_fraction: float = 0.1
    holdout_grid: bool = True  # our runs: also refit without each model's largest width and n_train
    # our runs
    x: str | Sequence[str] = "network_operations"  # one compute column, or several (one set of fits each)
    error: str = "test_error"
    specs: Sequence[str] = ("poly", "exp", "quantile10")
    models: str | Sequence[str] | None = field(default=None, metadata={"key": "filter.model"})
    datasets: str | Sequence[str] | None = field(default=None, metadata={"key": "filter.data"})
    seeds: str = "mean"
    # what identifies a configuration; "config.model.*": every argument of the model's constructor
    group_by: Sequence[str] = (
        "model",
        "data",
        "model_width",
        "model_depth",
        "config.model.*",
        "n_train",
        "epochs",
    )
    frontier: bool | Literal["both"] = False  # False: all configurations | True: the frontier only | "both"
    contended: str = "drop"  # time-based x: leave out runs flagged contended ("drop") or keep them
    collapsed: str = "drop"  # leave out runs flagged collapsed (no better than chance) or keep them
    tune: str | Sequence[str] = ()  # swept keys searched per configuration, selected on the validation error
    tune_compute: str = "best"  # a tuned point's compute: the chosen run's ("best") or the search's ("sum")
    parametric: bool = field(default=True, metadata={"key": "parametric.enabled"})
    parametric_by_model: bool = field(default=True, metadata={"key": "parametric.by_model"})
    bootstrap: int = field(default=1000, metadata={"key": "parametric.bootstrap"})
    bootstrap_seed: int = field(default=0, metadata={"key": "parametric.seed"})
    huber_delta: float = field(default=0.1, metadata={"key": "parametric.huber_delta"})

    def __post_init__(self) -> None:
        # Booleans only: 0 and 1 equal False and True, but frontier=0 or frontier=1 is refused.
        _require(
            isinstance(self.frontier, bool) or self.frontier == "both",
            f"frontier={self.frontier} is unknown; use frontier=false, true or both",
        )
        _require(0.0 < self.level < 1.0, f"level={self.level} must lie strictly between 0 and 1")
        _require(0.0 < self.quantile < 1.0, f"quantile={self.quantile} must lie strictly between 0 and 1")
        for name, values in self.targets.items():
            bad = [v for v in values if not 0.0 < float(v) < 1.0]
            _require(not bad, f"extrapolation.targets.{name}: {bad} are not errors between 0 and 1")
        _require(self.bootstrap >= 1, f"parametric.bootstrap={self.bootstrap} must be at least 1")
        _require(bool(self.xs), "x=[] names no compute column; give one, e.g. x=network_operations")

    @property
    def xs(self) -> tuple[str, ...]:
        """The compute columns to fit, in order (x= may name one or several)."""
        return (self.x,) if isinstance(self.x, str) else tuple(self.x)

    @property
    def tune_keys(self) -> tuple[str, ...]:
        """The keys tuned over (tune= may name one or several; none: no tuning)."""
        return (self.tune,) if isinstance(self.tune, str) else tuple(self.tune)

    @property
    def point_sets(self) -> tuple[str, ...]:
        """Which points the fits of our runs use: ("all",), ("frontier",) or both."""
        return _FRONTIER_MODES[self.frontier]

    def targets_for(self, *names: str) -> tuple[float, ...]:
        """The target errors of the first of `names` that has some, else the default ones."""
        for name in (*names, "default"):
            if name in self.targets:
                return tuple(float(v) for v in self.targets[name])
        return ()


# The settings class of each command's root config, for preflight's checks of a key's kind.
ROOTS = MappingProxyType({"train": RunSettings, "measure": ModelMeasureSettings, "fit": FitSettings})
