# Tables (mean +- std over seeds, deltas, paired tests) and figures from every HRSA and evaluation output.


rule report:
    input:
        hrsa=lambda wc: [
            f"results/hrsa/{probe}/{c.name}.parquet"
            for c in STUDY.comparisons
            for probe in STUDY.probes
        ],
        evals=expand(
            "results/eval/{model}/{task}.json",
            model=STUDY.embedder_models(),
            task=EVAL_TASKS,
        ),
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
    shell:
        "hrsa report --threads {threads} --hrsa-dir results/hrsa --eval-dir results/eval --config {params.config}"
        " --out results/report > {log} 2>&1"
