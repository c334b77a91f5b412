"""Embedder evaluation: local mteb tasks over the vendored data in data/eval/ and a thin wrapper around mteb.evaluate.

Modules: names (config entries -> tasks, benchmark expansion, the task-refs cache), groups (the workflow's task groups
and each job's config slice), tasks (the local tasks), prompts (instructions and prompts), encoder (the model wrapped
for mteb), cache (settings records beside mteb's result cache), results (summaries and result files), run (one
evaluation). Import the submodules explicitly; tasks, encoder and run import mteb, which is slow.
"""
