"""Checks on a command line before Hydra runs: a bad group option, a bad override or an unwritable results
directory is one line and exit code 2, and Hydra has not yet created any directory."""

from __future__ import annotations

import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.errors import one_line

CONFIG_MODULE = "harness.conf"


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def group_options(group: str) -> list[str] | None:
    """Options of a config group shipped in harness.conf (None when `group` is not one of its groups)."""
    folder = files(CONFIG_MODULE).joinpath(group)
    if not folder.is_dir():
        return None
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preflight(config_name: str, args: list[str], results_dir_key: str | None = None) -> None:
    """Exit with one line for: an unknown option of one of our config groups (sweep values included),
    an override Hydra cannot apply, or (for `results_dir_key`) a results directory that is not writable."""
    overrides = [a for a in args if not a.startswith("-")]
    if any(a in ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info") for a in args):
        return
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return  # Hydra reports its own parse errors, with a pointer to the bad character
    single = []
    for override in parsed:
        key = override.key_or_group
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else None
        options = None if key.startswith("hydra") else group_options(key)
        if options is not None and not override.is_delete():
            for value in values or [override.value()]:
                if value is not None and str(value) not in options:
                    _fail(f"unknown {key} '{value}'; choose one of: {', '.join(options)}")
        if values is None and not key.startswith("hydra"):
            single.append(override.input_line)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=single)
    except (HydraException, OmegaConfBaseException) as exc:
        _fail(one_line(exc, keep=2))  # Hydra's first two lines: what failed, how to fix it
    finally:
        GlobalHydra.instance().clear()
    if results_dir_key is not None:
        _check_writable(Path(str(OmegaConf.select(cfg, results_dir_key))), results_dir_key)


def _check_writable(directory: Path, key: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        _fail(f"{key}={directory} is not writable ({exc.strerror}); choose another with {key}=<dir>")
