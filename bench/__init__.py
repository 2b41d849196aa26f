"""Benchmarks that print ratios measured in one run (installed as ``affetto.bench``).

``affetto bench`` runs :mod:`affetto.bench.bench_engine`; the others run from a
source checkout (``python bench/bench_daemon.py``, ...), see their docstrings.
"""
