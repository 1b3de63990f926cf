"""Benchmarks: ``python -m instructnet.bench <name>`` prints one JSON object.

Speeds are measured as rates within one run on the current machine; compare them as
ratios, never as absolute timings across machines.
"""
