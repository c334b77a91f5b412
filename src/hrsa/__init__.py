"""HRSA: do reasoning (RLVR) backbones make better embedding models? Engine behind the Snakemake workflow."""

__version__ = "0.1.0"
