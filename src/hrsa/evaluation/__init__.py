"""Embedder evaluation: local mteb tasks over the vendored data in data/eval/ and a thin wrapper around mteb.evaluate.

Import the submodules (`hrsa.evaluation.tasks`, `hrsa.evaluation.run`) explicitly; they import mteb, which is slow.
"""
