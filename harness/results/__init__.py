"""Run records: the schema, atomic storage, and loading into pandas."""

from harness.results.schema import SCHEMA_VERSION, STATUSES, RunRecord, schema_markdown
from harness.results.store import load, read_record, write_curve, write_record

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "RunRecord",
    "load",
    "read_record",
    "schema_markdown",
    "write_curve",
    "write_record",
]
