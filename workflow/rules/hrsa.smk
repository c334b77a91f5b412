# HRSA of one comparison on one probe set: every metric at every layer, plus the L x L CKA matrix. On a cluster, group
# hrsa bundles comparisons into a few submissions (group-components in profiles/slurm).


rule compare:
    input:
        left=lambda wc: comparison_side(
            paths.ACTIVATIONS, wc.probe, wc.comparison, "left"
        ),
        right=lambda wc: comparison_side(
            paths.ACTIVATIONS, wc.probe, wc.comparison, "right"
        ),
        knn_left=lambda wc: comparison_side(paths.KNN, wc.probe, wc.comparison, "left"),
        knn_right=lambda wc: comparison_side(
            paths.KNN, wc.probe, wc.comparison, "right"
        ),
        probe=paths.PROBE,
    output:
        table=paths.HRSA_TABLE,
        procrustes=paths.PROCRUSTES_MAP,
    log:
        paths.LOG_COMPARE,
    benchmark:
        paths.BENCH_COMPARE
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
        " --probe {input.probe:q} --probe-name {wildcards.probe:q}"
        " --comparison {wildcards.comparison:q} --out {output.table:q} --procrustes-map {output.procrustes:q} > {log:q} 2>&1"
