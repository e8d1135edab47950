"""`hydra/sweeper: harness` (conf/hydra/sweeper/harness.yaml, chosen by `harness train`'s root config).

Hydra's basic sweeper composes every job's config to check it before the launcher composes it again to run
it, both from scratch: about 0.1 s a job, most of a tiny job's cost. This one makes the same jobs in the same
batches, and differs in two things:

- its launcher composes through a `harness.composition.SweepComposer`: each shape of job (config groups,
  Hydra settings) composed once by Hydra, each job a copy of its shape with its values applied;
- every job of every batch is checked before the first runs (not batch by batch) and before anything is
  written, and a job that cannot be composed is one line (`error: Could not override 'model.nope'. ...`) and
  exit status 2, as a bad override of a single run is.

It lives in Hydra's plugin package because Hydra instantiates sweepers only from there; `harness` registers
it with Hydra before a command runs (harness.composition.register_sweeper), which an editable install needs:
Hydra's scan of `hydra_plugins` does not see packages an editable install maps.
"""

from __future__ import annotations

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from harness.composition import SweepComposer, composition_error


class HarnessSweeper(BasicSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        composer = SweepComposer(hydra_context.config_loader)
        context = HydraContext(config_loader=composer, callbacks=hydra_context.callbacks)
        super().setup(hydra_context=context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.hydra_context is not None
        # The jobs as BasicSweeper.sweep makes them (its batches are these, cut max_batch_size at a time).
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        (jobs,) = self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]), None)
        try:
            for overrides in jobs:
                self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except (HydraException, OmegaConfBaseException) as exc:
            composition_error(exc)
        return super().sweep(arguments)

    def validate_batch_is_legal(self, batch: Any) -> None:
        """Nothing left to check: `sweep` composed every job of every batch before the first ran."""
