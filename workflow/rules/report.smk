# The study's answer: Table 1 with equivalence tests and verdicts, HRSA figures, realignment summary, what was run.

from hrsa.report import grid_records


localrules:
    report,


REPORT_RECORDS = grid_records(
    STUDY,
    evaluated_models(),
    list(EVAL_GROUPS),
    report_hrsa_tables(),
    bool(lookup(dpath="training_data/mine/enabled", within=config)),
)


rule report:
    input:
        hrsa=report_hrsa_tables(),
        procrustes=report_procrustes_maps(),
        evals=evaluation_results(),
        health=health_results(),
        models=REPORT_RECORDS["models"],
        training=training_summaries(),
        # labelled probe sets: the chance line of probe transfer (read by --probes under --run-records)
        probe_sets=expand(paths.PROBE, probe=list(STUDY.probes)),
    output:
        index=report(
            paths.REPORT_INDEX,
            caption="../report/index.rst",
            category="Summary",
        ),
        html=report(
            paths.REPORT_HTML,
            caption="../report/html.rst",
            category="Summary",
        ),
        answer=paths.REPORT_ANSWER,
        tables=report(
            directory(paths.REPORT_TABLES),
            patterns=["{name}.tsv"],
            caption="../report/tables.rst",
            category="Tables",
        ),
        figures=report(
            directory(paths.REPORT_FIGURES),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        paths.LOG_REPORT,
    benchmark:
        paths.BENCH_REPORT
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        **LOCAL_RESOURCES["report"],
    params:
        # the science the verb reads, never the whole config: resources, threads and devices must not rerun it
        config=as_json(lookup(dpath="report", within=config)),
        grid=as_json(REPORT_RECORDS["grid"]),
        models=" ".join(map(q, evaluated_models())),
        tasks=" ".join(map(q, EVAL_TASKS)),
        task_benchmarks=as_json(EVAL_MEMBERS),
        probes=" ".join(map(q, STUDY.probes)),
        backbones=" ".join(map(q, REPORT_RECORDS["built"])),
        extracted=" ".join(map(q, REPORT_RECORDS["extracted"])),
        mine=report_mine_flag(REPORT_RECORDS),
        groups=" ".join(map(q, EVAL_GROUPS)),
    shell:
        # the evaluations, job records and provenance files are named by the grid (input.evals, input.models and
        # the job records of hrsa.report.run_inputs): their ~5,000 paths on the paper grid would pass the 128 KiB
        # limit of one shell command line. Job records (results/benchmarks/) are no input: the verb reads those that exist
        # and lists the others, so deleting them (or copying results/ alone) reruns no finished job
        "hrsa report --threads {threads} --hrsa {input.hrsa:q} --eval-dir results/eval --models {params.models}"
        " --tasks {params.tasks} --task-benchmarks {params.task_benchmarks} --config {params.config} --grid {params.grid}"
        " --run-records --eval-groups {params.groups} --probes {params.probes} --backbones {params.backbones} --extract-models {params.extracted}"
        " {params.mine} --procrustes-maps {input.procrustes:q} --health {input.health:q} --training {input.training:q} --out results/report > {log:q} 2>&1"
