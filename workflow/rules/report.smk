# Tables (mean +- std over seeds, deltas, paired tests) and figures from every HRSA and evaluation output.


rule report:
    input:
        hrsa=report_hrsa_tables(),
        evals=evaluation_results(),
    output:
        index=report(
            "results/report/index.md",
            caption="../report/index.rst",
            category="Summary",
        ),
        figures=report(
            directory("results/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        "logs/report.log",
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=as_json(config),
        models=" ".join(map(q, STUDY.embedder_models())),
        tasks=" ".join(map(q, EVAL_TASKS)),
    shell:
        # the evaluations are named by model x task (exactly input.evals): their ~2,400 paths on the paper grid would
        # pass the 128 KiB limit of one shell command line
        "hrsa report --threads {threads} --hrsa {input.hrsa:q} --eval-dir results/eval --models {params.models}"
        " --tasks {params.tasks} --config {params.config} --out results/report > {log:q} 2>&1"
