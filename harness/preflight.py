"""Checks on a command line before Hydra runs: a bad group option, a bad override or an unwritable results
directory is one line and exit code 2, and Hydra has not yet created any directory."""

from __future__ import annotations

import difflib
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.conf import CONFIG_MODULE
from harness.errors import exit_with_error, one_line
from harness.settings import ROOTS, field_type, kind


def group_options(group: str) -> list[str] | None:
    """Options of a config group shipped in harness.conf (None when `group` is not one of its groups)."""
    folder = files(CONFIG_MODULE).joinpath(group)
    if not folder.is_dir():
        return None
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preflight(config_name: str, args: list[str], results_dir_key: str | None = None) -> None:
    """Exit with one line for: an unknown option of one of our config groups (sweep values included), a
    value of the wrong kind (text where the default is a number or a boolean), an override Hydra cannot
    apply, or (for `results_dir_key`) a results directory that is not writable."""
    overrides = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # Hydra reports its own parse errors, with a pointer to the bad character
    single, groups, values_of, appended = [], [], {}, []
    for override in parsed:
        key = override.key_or_group
        if key.startswith("hydra") or override.is_delete():
            continue
        options = group_options(key)
        if (override.is_add() or override.is_force_add()) and options is None:
            appended.append(key)
        values: list[Any] | None = list(override.sweep_iterator()) if override.is_sweep_override() else None
        if options is not None:
            for value in values or [override.value()]:
                if value is not None and str(value) not in options:
                    exit_with_error(f"unknown {key} '{value}'; choose one of: {', '.join(options)}")
        if values is None:
            single.append(override.input_line)
            if options is not None:
                groups.append(override.input_line)
        if options is None:
            values_of[key] = values or [override.value()]
    cfg = _compose(config_name, single)
    # The defaults (after the group choices) are composed only when there is something to check against.
    defaults = _compose(config_name, groups) if values_of or appended else None
    if appended:
        _check_appended(defaults, appended)
    if values_of:
        _check_kinds(defaults, values_of, ROOTS.get(config_name))
    if results_dir_key is not None:
        _check_writable(Path(str(OmegaConf.select(cfg, results_dir_key))), results_dir_key)


def _compose(config_name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        exit_with_error(one_line(exc, keep=2))  # Hydra's first two lines: what failed, how to fix it
    finally:
        GlobalHydra.instance().clear()


def _kind(default, key: str, settings: type | None) -> str | None:
    """'boolean' or 'number' when the key takes one, else None: as the type of its field in harness.settings
    says, or, for a key no settings class reads (harness measure's), as its default's."""
    hint = field_type(settings, key) if settings is not None else None
    if hint is not None:
        return kind(hint)
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int | float):
        return "number"
    return None  # text and nested defaults: their readers check what they get


def _check_kinds(defaults, values_of: dict[str, list], settings: type | None) -> None:
    """A value must be of its key's kind: a number for a number, true/false for a boolean. Without this,
    `trainer.epochs=abc` would pass Hydra and fail deep inside training with a traceback."""
    for key, values in values_of.items():
        default = OmegaConf.select(defaults, key, default=None, throw_on_missing=False)
        wanted = _kind(default, key, settings)
        for value in values if wanted else []:
            if value is None or (isinstance(value, str) and value.startswith("${")):
                continue  # null, or an interpolation resolved later
            if wanted == "boolean" and not isinstance(value, bool):
                exit_with_error(f"{key}={value} is not a boolean; write {key}=true or {key}=false")
            if wanted == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
                hint = f"or null ({key}=null)" if default is None else f"like the default, {key}={default}"
                exit_with_error(f"{key}={value} is not a number; give a number {hint}")


# Where a key of one's own is legal: user labels (kept in the record, not in config_hash), a model's
# arguments (passed to its constructor, which refuses the ones it does not take), and harness measure's
# named inputs (passed to the model's forward; each one checked by harness.compute.inputs).
OPEN_NODES = ("tags", "model", "inputs")


def _check_appended(defaults, keys: list[str]) -> None:
    """`+a.b=v` adds a key no config has. Refused unless something reads it: without this, `+trainer.lr=1e6`
    trains at the default learning rate and still lands in the record and its config_hash."""
    known = _leaf_keys(OmegaConf.to_container(defaults, resolve=False))
    for key in keys:
        *parents, _ = key.split(".")
        if parents and parents[0] in OPEN_NODES:
            continue
        parent = OmegaConf.select(defaults, ".".join(parents), default=None) if parents else defaults
        if isinstance(parent, DictConfig) and "_target_" in parent:
            continue  # an instantiated object (an optimizer): its keys are its constructor's arguments
        hint = _nearest(key, known)
        exit_with_error(
            f"+{key}: no setting of that name is read, so it would change nothing"
            + (f"; did you mean {hint}=...?" if hint else "")
            + f" (labels of your own: +tags.{key.split('.')[-1]}=<value>)"
        )


def _leaf_keys(node, prefix: str = "") -> list[str]:
    """Every dotted key of a (nested dict) config that holds a value."""
    if not isinstance(node, dict) or not node:
        return [prefix] if prefix else []
    return [key for name, child in node.items() for key in _leaf_keys(child, f"{prefix}.{name}".lstrip("."))]


def _nearest(key: str, known: list[str]) -> str | None:
    """The real key `key` most likely meant: one with the same last name (trainer.lr -> trainer.optimizer.lr)
    if any, else the closest spelling."""
    leaf = key.split(".")[-1]
    candidates = [k for k in known if k.split(".")[-1] == leaf] or known
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.0 if candidates is not known else 0.6)
    return close[0] if close else None


def _check_writable(directory: Path, key: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        exit_with_error(
            f"{key}={directory} is not writable ({exc.strerror}); choose another with {key}=<dir>"
        )
