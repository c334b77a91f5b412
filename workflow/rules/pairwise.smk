# The figures of one HRSA table alone (no evaluations): what `hrsa pairwise` asks for beside the table.


localrules:
    hrsa_figures,


rule hrsa_figures:
    input:
        table=paths.HRSA_TABLE,
    output:
        directory(paths.PAIRWISE_FIGURES),
    log:
        paths.LOG_FIGURES,
    benchmark:
        paths.BENCH_FIGURES
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        **LOCAL_RESOURCES["hrsa_figures"],
    params:
        config=as_json(lookup(dpath="report", within=config)),
        left=lambda wc: q(model_path(STUDY.comparison(wc.comparison).model("left"))),
        right=lambda wc: q(model_path(STUDY.comparison(wc.comparison).model("right"))),
    shell:
        "hrsa figures --threads {threads} --hrsa {input.table:q} --config {params.config}"
        " --names {params.left} {params.right} --out {output:q} > {log:q} 2>&1"
