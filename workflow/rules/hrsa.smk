# HRSA of one comparison on one probe set: every metric at every layer, plus the L x L CKA matrix. On a cluster, group
# hrsa bundles comparisons into a few submissions (group-components in profiles/slurm).


rule compare:
    input:
        left=lambda wc: f"results/activations/{wc.probe}/{STUDY.comparison(wc.comparison).model('left')}",
        right=lambda wc: f"results/activations/{wc.probe}/{STUDY.comparison(wc.comparison).model('right')}",
        knn_left=lambda wc: comparison_knn(wc.probe, wc.comparison, "left"),
        knn_right=lambda wc: comparison_knn(wc.probe, wc.comparison, "right"),
        probe="results/data/probes/{probe}.jsonl",
    output:
        table="results/hrsa/{probe}/{comparison}.parquet",
        procrustes="results/hrsa/{probe}/{comparison}.procrustes.npz",
    log:
        "logs/hrsa/{probe}/{comparison}.log",
    benchmark:
        "benchmarks/hrsa/{probe}/{comparison}.tsv"
    group:
        "hrsa"
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("compare")
    resources:
        **gpu_request(1 if lookup(dpath="resources/compare/gpu", within=config) else 0),
        mem_mb=stage_mem_mb(
            "compare",
            extra=2048 * lookup(dpath="hrsa/max_accumulator_gb", within=config),
        ),
        runtime=stage_runtime("compare"),
    params:
        config=as_json(lookup(dpath="hrsa", within=config)),
    shell:
        "hrsa compare --threads {threads} --left {input.left:q} --right {input.right:q}"
        " --knn-left {input.knn_left:q} --knn-right {input.knn_right:q} --config {params.config}"
        " --gpus {resources.gpu_slots}"
        " --probe {input.probe:q}"
        " --comparison {wildcards.comparison:q} --out {output.table:q} --procrustes-map {output.procrustes:q} > {log:q} 2>&1"
