"""One table of human labels, with units, for the columns that plots, reports and sweep summaries show."""

from __future__ import annotations

from types import MappingProxyType

LABELS = MappingProxyType(
    {
        "error": "error",
        "test_error": "test error (fraction)",
        "best_test_error": "best test error (fraction)",
        "val_error": "validation error (fraction)",
        "ops_forward_pass": "operations per forward pass (FLOP)",
        "network_operations": "network operations (FLOP)",
        "hardware_burden": "hardware burden (FLOP)",
        "hardware_burden_consolidated": "hardware burden, measured or imputed (FLOP)",
        "flops_forward": "forward FLOPs per sample (FLOP)",
        "flops_train_measured": "measured training FLOPs (FLOP)",
        "energy_total_j": "training energy (J)",
        "energy_method": "energy method",
        "train_time_s": "training time (s)",
        "wall_time_s": "wall time (s)",
        "n_train": "training set size (samples)",
        "params": "parameters",
    }
)

# The same, short enough for a column heading of a table with a dozen columns.
SHORT_LABELS = MappingProxyType(
    {
        "test_error": "test error",
        "val_error": "val error",
        "flops_forward": "FLOP/sample fwd",
        "network_operations": "network ops (FLOP)",
        "hardware_burden": "hw burden (FLOP)",
        "energy_total_j": "energy (J)",
        "energy_method": "energy method",
        "train_time_s": "train time (s)",
        "config.model.name": "model",
        "config.data.name": "data",
    }
)

# Registry models get a fixed colour, so a model looks the same in every figure of a study (matplotlib's
# default cycle, by name); others follow in name order after these.
MODEL_COLOURS = MappingProxyType(
    {
        "cnn": "C0",
        "mlp": "C1",
        "gru": "C7",
        "resnet": "C2",
        "transformer": "C4",
        "linear_expert": "C5",
        "linear_flexible": "C6",
        "linear_lasso": "C8",
        "mlp_ntk": "C9",
    }
)


def label(column: str) -> str:
    """The human label of `column` (its name with spaces when the table has none)."""
    return LABELS.get(column, column.replace("_", " "))


def short_label(column: str) -> str:
    """A column heading for `column`: its short label, else its name without the `config.` prefix."""
    return SHORT_LABELS.get(column, column.removeprefix("config."))


def model_colours(models) -> dict[str, str]:
    """A colour per model: registry models their fixed one, the rest the unused colours in name order."""
    free = [f"C{i}" for i in range(10) if f"C{i}" not in MODEL_COLOURS.values()] or ["C7"]
    others = sorted(str(m) for m in set(models) if str(m) not in MODEL_COLOURS)
    colours = {m: free[i % len(free)] for i, m in enumerate(others)}
    return {str(m): MODEL_COLOURS.get(str(m), colours.get(str(m))) for m in models}
