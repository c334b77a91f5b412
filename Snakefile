# HRSA study: do reasoning (RLVR) backbones make better embedding models? (arXiv 2601.21192)
# Grid: backbone pair x seed x layer, all from the config. Rules hold wiring only; logic lives in src/hrsa.

from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

REPO = Path(workflow.basedir)


configfile: "config/config.yaml"


validate(config, str(REPO / "src/hrsa/config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/backbones.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/knn.smk"
include: "workflow/rules/hrsa.smk"
include: "workflow/rules/baseline.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
