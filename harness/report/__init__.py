"""The report of `harness fit`: CSV tables, log-log plots, report.md and report.html, the printed summary."""

from harness.report.build import write_outputs
from harness.report.console import print_summary

__all__ = ["print_summary", "write_outputs"]
