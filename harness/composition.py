"""Each job of a sweep composed once per shape instead of from scratch: what the harness sweeper
(hydra_plugins.harness_sweeper) hands its launcher as Hydra's config loader.

Hydra composes a job's config from its overrides: the config groups they choose decide which files are read
and merged (the slow part, about 0.05 s here), and the values they set are applied to the merged config
after it. Jobs of a sweep differ mostly in values (seed, model.width), so `SweepComposer` composes each
*shape* (the config name, the group choices and Hydra's own settings) once with Hydra, and makes every job
of that shape from a copy of it with Hydra's own code for applying values: a few milliseconds a job, and the
same config Hydra would compose, the same errors for bad values. The first job of each shape is composed by
Hydra as well and compared; should the two ever differ, that shape's jobs are all composed by Hydra.

Launchers compose through `hydra_context.config_loader`: the basic launcher in this process, joblib in its
workers and submitit in each SLURM task, which receive this loader pickled with its verified shapes.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from typing import Any, NoReturn

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException, HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from harness.errors import exit_with_error, one_line

log = logging.getLogger(__name__)
# A shape of job: the root config's name and the override lines that decide what Hydra composes.
ShapeKey = tuple[str | None, tuple[str, ...]]


@dataclass(frozen=True)
class _Shape:
    """A shape's config as Hydra composed it (its group choices and Hydra settings, no values yet), pickled:
    unpickling makes a job's copy about 20 times faster than copy.deepcopy (OmegaConf's deepcopy is Python,
    node by node). None when its first job came out different from Hydra's (each of its jobs is then
    composed by Hydra)."""

    config: bytes | None
    hydra_before: tuple[str, ...] = ()  # hydra.overrides.hydra as the config had it before any override
    task_before: tuple[str, ...] = ()  # hydra.overrides.task likewise


@dataclass(frozen=True)
class _Overrides:
    """A job's overrides, in its order, told apart as Hydra's defaults list tells them apart."""

    every: list[Override]
    shaping: list[Override]  # what decides the files composed, and Hydra's own settings
    values: list[Override]  # values set on the composed config, in order


class SweepComposer(ConfigLoader):
    """Hydra's config loader (`loader`, which does everything else) with a sweep job's config made from its
    shape (see the module)."""

    def __init__(self, loader: ConfigLoader) -> None:
        self.loader = loader
        self.shapes: dict[ShapeKey, _Shape] = {}
        self.parsed: dict[str, Override] = {}  # override lines as Hydra's parser read them: jobs share most
        self.hydra_compositions = 0  # how many configs Hydra composed from scratch here (what tests count)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        config_name = master_config.hydra.job.config_name
        # As Hydra's load_sweep_config: the sweep's own Hydra overrides first, then the job's.
        lines = [*OmegaConf.to_container(master_config.hydra.overrides.hydra), *sweep_overrides]
        overrides = self._told_apart(self._parse(lines))
        key = (config_name, tuple(o.input_line for o in overrides.shaping))
        shape = self.shapes.get(key)
        if shape is None:
            return self._first_of_shape(master_config, sweep_overrides, overrides, key)
        if shape.config is None:
            return self._hydra(master_config, sweep_overrides)
        return _from_shape(shape, master_config, overrides)

    def _first_of_shape(
        self,
        master_config: DictConfig,
        sweep_overrides: list[str],
        overrides: _Overrides,
        key: ShapeKey,
    ) -> DictConfig:
        """Compose the shape and its first job with Hydra (whose errors are the job's), then the same job
        from the shape: the shape is kept for the next jobs only when the two agree."""
        composed = self._hydra(master_config, sweep_overrides)
        try:
            shape = self._compose_shape(key, overrides)
            same = _same(_from_shape(shape, master_config, overrides), composed)
        except (HydraException, OmegaConfBaseException):  # the shape alone, without its values, or its copy
            same = False
        if not same:
            log.warning(
                "sweep jobs with overrides like %s: composed by Hydra one by one (a copy of their shape "
                "differed from Hydra's composition)",
                " ".join(sweep_overrides),
            )
            shape = _Shape(None)
        self.shapes[key] = shape
        return composed

    def _compose_shape(self, key: ShapeKey, overrides: _Overrides) -> _Shape:
        config_name, shaping = key
        self.hydra_compositions += 1
        base = self.loader.load_configuration(
            config_name=config_name, overrides=list(shaping), run_mode=RunMode.RUN
        )
        hydra_own = sum(o.is_hydra_override() for o in overrides.shaping)
        return _Shape(
            pickle.dumps(base, protocol=pickle.HIGHEST_PROTOCOL),
            _before(base.hydra.overrides.hydra, hydra_own),
            _before(base.hydra.overrides.task, len(overrides.shaping) - hydra_own),
        )

    def _parse(self, lines: list[str]) -> list[Override]:
        new = [line for line in dict.fromkeys(lines) if line not in self.parsed]
        if new:
            self.parsed.update(zip(new, OverridesParser.create().parse_overrides(new), strict=True))
        return [self.parsed[line] for line in lines]

    def _hydra(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        self.hydra_compositions += 1
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def _told_apart(self, every: list[Override]) -> _Overrides:
        """Which overrides decide what Hydra composes (a config group's choice, not a dict value, as Hydra's
        defaults list tells them apart) or are Hydra's own settings, its search path among them."""
        repository = getattr(self.loader, "repository", None)
        if repository is None or any(o.get_key_element() == "hydra.searchpath" for o in every):
            # Another loader than Hydra's, or groups that may come from added folders: nothing told apart,
            # each job composed by Hydra.
            return _Overrides(every, every, [])
        shaping, values = [], []
        for o in every:
            decides = o.is_hydra_override() or o.package is not None
            if decides or (not isinstance(o.value(), dict) and repository.group_exists(o.key_or_group)):
                shaping.append(o)
            else:
                values.append(o)
        return _Overrides(every, shaping, values)

    # The rest of the interface: Hydra's loader's own.
    def load_configuration(self, *args: Any, **kwargs: Any) -> DictConfig:
        return self.loader.load_configuration(*args, **kwargs)

    def get_search_path(self) -> Any:
        return self.loader.get_search_path()

    def get_sources(self) -> Any:
        return self.loader.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        return self.loader.list_groups(parent_name)

    def get_group_options(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.loader.get_group_options(*args, **kwargs)

    def compute_defaults_list(self, *args: Any, **kwargs: Any) -> Any:
        return self.loader.compute_defaults_list(*args, **kwargs)


def _from_shape(shape: _Shape, master_config: DictConfig, overrides: _Overrides) -> DictConfig:
    """The job's config as Hydra's _load_configuration_impl finishes it after composing: its value overrides
    applied in order, the override lists and the override_dirname of all its overrides, the sweep's cached
    resolver values (timestamps) as load_sweep_config copies them."""
    assert shape.config is not None
    cfg = pickle.loads(shape.config)
    ConfigLoaderImpl._apply_overrides_to_config(overrides.values, cfg)
    task = [o for o in overrides.every if not o.is_hydra_override()]
    hydra_own = [o.input_line for o in overrides.every if o.is_hydra_override()]
    try:
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.hydra = [*shape.hydra_before, *hydra_own]
            cfg.hydra.overrides.task = [*shape.task_before, *(o.input_line for o in task)]
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=task,
                kv_sep=cfg.hydra.job.config.override_dirname.kv_sep,
                item_sep=cfg.hydra.job.config.override_dirname.item_sep,
                exclude_keys=cfg.hydra.job.config.override_dirname.exclude_keys,
            )
    except OmegaConfBaseException as exc:  # as Hydra's load_configuration reports it
        raise ConfigCompositionException(str(exc)) from exc
    OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
    return cfg


def _before(lines: Any, appended: int) -> tuple[str, ...]:
    """A composed override list without the `appended` lines Hydra added at its end."""
    values = [str(line) for line in lines]
    return tuple(values[: len(values) - appended])


def _same(made: DictConfig, composed: DictConfig) -> bool:
    """The same keys and values (interpolations unresolved), struct flags and typed Hydra node."""
    return (
        OmegaConf.to_container(made, resolve=False) == OmegaConf.to_container(composed, resolve=False)
        and OmegaConf.is_struct(made) == OmegaConf.is_struct(composed)
        and OmegaConf.get_type(made, "hydra") is OmegaConf.get_type(composed, "hydra")
    )


def composition_error(exc: BaseException) -> NoReturn:
    """A job the sweep cannot compose: one line, as preflight reports a bad override of a single run
    (Hydra's first two lines: what failed and how to fix it; its cause's when Hydra's own says nothing)."""
    while not str(exc).strip() and exc.__cause__ is not None:
        exc = exc.__cause__
    exit_with_error(one_line(exc, keep=2))


def register_sweeper() -> None:
    """Make the harness sweeper (conf/hydra/sweeper/harness.yaml) known to Hydra before a command runs.
    Hydra finds plugins by walking the `hydra_plugins` package, which misses one an editable install maps
    (`pip install -e .`, setuptools' import hook); registering it is Hydra's own way for such a plugin."""
    from hydra.core.plugins import Plugins

    try:
        from hydra_plugins.harness_sweeper.harness_sweeper import HarnessSweeper
    except ModuleNotFoundError as exc:  # an editable install made before the package existed maps none
        exit_with_error(
            f"harness's Hydra sweeper cannot be imported ({one_line(exc)}): the install predates it; "
            'run pip install -e ".[dev]" again in the checkout'
        )

    Plugins.instance().register(HarnessSweeper)
