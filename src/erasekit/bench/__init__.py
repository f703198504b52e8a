"""`erasekit bench`: methods x concepts x attacks in one cached, shardable run (spec.py, cells.py, compute.py,
table.py, collect.py). The bench sits above eval, methods and report, beside the CLI."""

from erasekit.bench.collect import collect, run

__all__ = ["collect", "run"]
