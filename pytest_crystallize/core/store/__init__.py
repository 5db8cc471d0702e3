"""Saved runs: run records, stores, definitions and fingerprints, the regression gate."""
