"""The harness sweeper: Hydra's basic sweeper, with each job composed once (harness.composition)."""
