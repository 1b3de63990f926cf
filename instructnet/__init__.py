"""instructnet: reproduce Riveland & Pouget (2024) as a Snakemake workflow.

Sub-packages mirror the workflow's stages: ``tasks`` (trial engine) → instructions /
embeddings → models → training → evaluation → analysis → ``figures``.
"""

__version__ = "0.1.0"
