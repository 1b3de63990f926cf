"""Figures: each renders from saved tables (Parquet) alone."""
