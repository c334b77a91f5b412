# Exact kNN graph per (model, probe, layer), computed once and shared by every comparison.


rule knn_graph:
    input:
        "results/activations/{probe}/{model}",
    output:
        "results/knn/{probe}/{model}/layer={layer}.npz",
    log:
        "logs/knn/{probe}/{model}/layer={layer}.log",
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        k=max(lookup(dpath="hrsa/knn_k", within=config)),
    shell:
        "hrsa knn --threads {threads} --activations {input:q} --layer {wildcards.layer:q} --k {params.k}"
        " --out {output:q} > {log:q} 2>&1"
