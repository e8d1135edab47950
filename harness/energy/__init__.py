"""Energy, carbon and cost of a run's training windows, every figure tagged with how it was obtained.

Rooms: nvml.py (GPU counter windows, power timeline, shared/MIG flags), carbon.py (codecarbon's offline
tracker for CPU and RAM; grid intensity), cost.py (paper conversion, electricity, cloud prices),
harness.settings.EnergySettings (the `energy` config group), meter.py (the facade the training loop calls).

Nothing is imported from pynvml or codecarbon until a meter is made, so importing this package is free.
"""

from harness.energy.cost import cost_fields
from harness.energy.meter import ENERGY_FIELDS, EnergyMeter
from harness.settings import EnergySettings

__all__ = ["ENERGY_FIELDS", "EnergyMeter", "EnergySettings", "cost_fields"]
