"""Checks on a command line before Hydra runs: a bad group option, a bad override or an unwritable results
directory is one line and exit code 2, and Hydra has not yet created any directory.

A user's own config directory (Hydra's `--config-dir DIR` or `hydra.searchpath=[file://DIR]`) is checked
like the shipped tree: its group options are options, its files are composed with ours."""

from __future__ import annotations

import difflib
import tempfile
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.conf import CONFIG_MODULE
from harness.errors import exit_with_error, one_line
from harness.settings import ROOTS, field_type, kind, label_of

# Hydra's flags that take a value as the next argument (`--config-dir DIR`); the value is not an override.
VALUE_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun")
# The groups whose nodes name a `_target_` a user may bring (model=custom, data=custom, their own files):
# what the user brings, and how its target is written.
OWN_TARGETS = MappingProxyType(
    {
        "model": ("model", "nn.Module class or factory", "model._target_=pkg.module.Class"),
        "data": ("dataset", "loader function", "data._target_=pkg.module.make_data"),
    }
)


def group_options(group: str, search: tuple[str, ...] = ()) -> list[str] | None:
    """Options of a config group: shipped in harness.conf, or in a directory of the search path `search`
    (file:// or pkg:// entries, as hydra.searchpath takes them). None when no tree has that group."""
    folders = [files(CONFIG_MODULE).joinpath(group)] + [
        _search_root(entry).joinpath(group) for entry in search
    ]
    found = [
        p.name[: -len(".yaml")]
        for f in folders
        if f.is_dir()
        for p in f.iterdir()
        if p.name.endswith(".yaml")
    ]
    return sorted(set(found)) if any(f.is_dir() for f in folders) else None


def _search_root(entry: str):
    """The folder a search-path entry names: pkg://a.b (a package's files) or file://DIR (or DIR)."""
    if entry.startswith("pkg://"):
        try:
            return files(entry[len("pkg://") :].replace("/", "."))
        except ModuleNotFoundError:
            exit_with_error(
                f"hydra.searchpath entry {entry}: no such package; check the name or use file://DIR"
            )
    return Path(entry.removeprefix("file://"))


def _split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(overrides, search-path entries): `--config-dir DIR` (or -cd DIR, --config-dir=DIR) becomes the
    entry file://DIR, as Hydra adds it; the other flags and their values are Hydra's."""
    overrides, search = [], []
    values = iter(args)
    for arg in values:
        flag, equals, value = arg.partition("=")
        if arg.startswith("-"):
            if flag in VALUE_FLAGS and not equals:
                value = next(values, "")
            if flag in ("--config-dir", "-cd"):
                if not Path(value).is_dir():
                    exit_with_error(
                        f"{flag} {value}: no such directory; give the folder holding your model/, data/"
                    )
                search.append(f"file://{Path(value).resolve()}")
            continue
        overrides.append(arg)
    return overrides, search


def preflight(config_name: str, args: list[str], results_dir_key: str | None = None) -> list[str]:
    """Exit with one line for: an unknown option of one of our config groups (sweep values included), a
    value of the wrong kind (text where the default is a number or a boolean), an override Hydra cannot
    apply, a model or dataset without its `_target_`, or (for `results_dir_key`) a results directory that is
    not writable. Returns the overrides to add: `<group>.name=<the target's last component>` for a model or
    dataset of one's own left unnamed, so that its run directory is named as its record is."""
    overrides, search = _split_args(args)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return []  # Hydra reports its own parse errors, with a pointer to the bad character
    for override in parsed:
        entries = override.value() if override.key_or_group == "hydra.searchpath" else None
        if isinstance(entries, list):
            search += [str(entry) for entry in entries]
    searchpath = [f"hydra.searchpath=[{','.join(search)}]"] if search else []
    single, groups, values_of, appended = list(searchpath), list(searchpath), {}, []
    swept = set()
    for override in parsed:
        key = override.key_or_group
        if key.startswith("hydra") or override.is_delete():
            continue
        options = group_options(key, tuple(search))
        if config_name == "train" and key in OWN_TARGETS and options is not None and override.value() is None:
            _refuse_null(key)
        if (override.is_add() or override.is_force_add()) and options is None:
            appended.append(key)
        values = _swept_values(override, key, options)
        if options is not None:
            for value in values or [override.value()]:
                if value is not None and str(value) not in options:
                    exit_with_error(f"unknown {key} '{value}'; choose one of: {', '.join(options)}")
        if values is None:
            single.append(override.input_line)
            if options is not None:
                groups.append(override.input_line)
        else:
            swept.add(key)
        if options is None:
            values_of[key] = values or [override.value()]
    # The defaults (after the group choices) are composed only when there is something to check against.
    defaults = _compose(config_name, groups) if values_of or appended else None
    if config_name == "train" and defaults is not None:
        _check_target_swaps(defaults, [*values_of, *appended])  # before Hydra's own word on model._target_
    cfg = _compose(config_name, single)
    added = _name_own_targets(cfg, swept) if config_name == "train" else []
    if "trainer.optimizer._target_" in (o.key_or_group for o in parsed if not o.is_sweep_override()):
        given = [o.key_or_group for o in parsed if o.key_or_group.startswith("trainer.optimizer.")]
        added += _drop_inherited_arguments(cfg.trainer.optimizer, given)
    if appended:
        _check_appended(defaults, appended)
    if values_of:
        _check_kinds(defaults, values_of, ROOTS.get(config_name))
    if results_dir_key is not None:
        _check_writable(Path(str(OmegaConf.select(cfg, results_dir_key))), results_dir_key)
    return added


def _swept_values(override: Override, key: str, options: list[str] | None) -> list[Any] | None:
    """The values a sweep override takes (None for a single value). `glob(...)` picks among a config group's
    options, which Hydra lists with a config loader this parser has not got: it is matched here against the
    options preflight already knows."""
    if not override.is_sweep_override():
        return None
    chooser = override.value()
    if not isinstance(chooser, Glob):
        return list(override.sweep_iterator())
    if options is None:
        exit_with_error(
            f"{override.input_line}: glob() chooses among a config group's options, and {key} is "
            "not a config group; list the values instead (key=a,b,c)"
        )
    chosen = chooser.filter(list(options))
    if not chosen:
        exit_with_error(
            f"{override.input_line} matches none of {key}'s options ({', '.join(options)}); widen the pattern"
        )
    return chosen


# Hydra's own keys of an instantiated node, not constructor arguments.
HYDRA_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


def _drop_inherited_arguments(node: DictConfig, given: list[str]) -> list[str]:
    """`trainer.optimizer._target_=torch.optim.Adam` swaps the class, and with it the arguments: the
    deletions of every argument the composed file gave the class it replaces (SGD's lr, momentum, ...), so
    the swap runs with the new class's own defaults and the arguments given on this command line. One of
    those the new class does not take is a one-line error naming both, as training would word it."""
    from harness.errors import ConfigError
    from harness.plugins import refuse_unknown, resolve

    target = node.get("_target_")
    # A config node's keys are names (strings); OmegaConf types them as any dict key (bytes, int, ...).
    keys = [str(key) for key in node if str(key) not in HYDRA_KEYS]
    kept = [key for key in keys if f"trainer.optimizer.{key}" in given]
    try:
        optimizer = resolve(target, "trainer.optimizer")
        refuse_unknown(optimizer, kept, f"trainer.optimizer._target_={target}", provided=("params",))
    except ConfigError as exc:
        exit_with_error(str(exc))
    return [f"~trainer.optimizer.{key}" for key in keys if key not in kept]


def _check_target_swaps(defaults: DictConfig, keys: list[str]) -> None:
    """`model._target_=...` on top of a shipped option would hand the user's class the shipped model's
    arguments (MLP's width and depth), and `data._target_=...` the shipped loader's: say what to write."""
    for group, (_, what, example) in OWN_TARGETS.items():
        node = defaults.get(group)
        if f"{group}._target_" not in keys or node is None or OmegaConf.is_missing(node, "_target_"):
            continue  # model=custom (or null, refused later): the target is what it waits for
        if "_target_" not in node or str(node._target_).startswith("harness."):
            exit_with_error(
                f"{group}._target_ on {group}={node.get('name')} would hand your {what} that option's "
                f"arguments; write {group}=custom {example}"
            )


def _refuse_null(group: str) -> NoReturn:
    noun, _, example = OWN_TARGETS[group]
    exit_with_error(
        f"{group}=null leaves the run without a {noun}; choose one ({group}=<option>) or bring your own: "
        f"{group}=custom {example}"
    )


def _name_own_targets(cfg: DictConfig, swept: set[str]) -> list[str]:
    """A train config's model and data must each be something: refuse model=null and a `_target_` left
    unset (model=custom without model._target_=...); name an unnamed one after its target."""
    named = []
    for group, (_, what, example) in OWN_TARGETS.items():
        node = cfg.get(group)
        if node is None:
            _refuse_null(group)
        if f"{group}._target_" in swept or f"{group}.name" in swept:
            continue  # named per job by Hydra's own values; the record names each run by its target
        if OmegaConf.is_missing(node, "_target_"):
            exit_with_error(f"{group}=custom needs {example} (your {what}, importable from PYTHONPATH)")
        target = OmegaConf.select(node, "_target_", default=None)
        if target and "name" in node and node.name is None:
            named.append(f"{group}.name={label_of(None, target)}")
    return named


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
        if isinstance(parent, DictConfig) and (
            "_target_" in parent or OmegaConf.is_missing(parent, "_target_")
        ):
            # an instantiated object (an optimizer, a model or loader, model=custom's still to be named):
            # its keys are its constructor's arguments, which it checks against its signature
            continue
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
