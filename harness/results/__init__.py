"""Run records: the schema, atomic storage, loading into pandas, sweep tables and the resume index."""

from harness.results.collect import collect, load_curves
from harness.results.schema import SCHEMA_VERSION, STATUSES, RunRecord, schema_markdown
from harness.results.store import load, read_record, write_curve, write_record

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "RunRecord",
    "collect",
    "load",
    "load_curves",
    "read_record",
    "schema_markdown",
    "write_curve",
    "write_record",
]
