# HRSA study: do reasoning (RLVR) backbones make better embedding models? (arXiv 2601.21192)
# Grid: backbone pair x seed x layer, all from the config. Rules hold wiring only; logic lives in src/hrsa.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

REPO = Path(workflow.basedir)


configfile: "config/config.yaml"


# the description `snakemake --report` opens on: the study's answer (results/report/answer.rst) and a link to the page
report: "workflow/report/workflow.rst"


sys.path.insert(0, str(REPO / "src"))

from hrsa.errors import ConfigError
from hrsa.grid.checks import check_config_files, check_numbers
from hrsa.grid.overlay import config_layers, overlay_drops

try:
    # every config file given (--configfile, configfile:) without duplicate keys: Snakemake's loader keeps the last
    check_config_files(workflow.configfiles)
    # a list in a later config file replaces the earlier one whole: say what an overlay dropped
    _cli_configfiles = list(workflow.overwrite_configfiles or [])
    for _note in overlay_drops(
        config_layers(
            workflow.configfiles[len(_cli_configfiles) :],
            _cli_configfiles,
            bool(workflow.config_settings.replace_workflow_config),
        )
    ):
        print(f"hrsa config: {_note}", file=sys.stderr)
    validate(config, str(REPO / "src/hrsa/config.schema.yaml"))
    # schema bounds are false for NaN: finite numbers, integers that are integers
    check_numbers(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid config: {exc}") from None


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/backbones.smk"
include: "workflow/rules/health.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/knn.smk"
include: "workflow/rules/hrsa.smk"
include: "workflow/rules/pairwise.smk"
include: "workflow/rules/baseline.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
