# Exact kNN graphs of every layer of one (model, probe) in one job (FAISS; on the GPU when the job has one), computed
# once and shared by every comparison. Submitted with the model's extractions (group features_{model}, extract.smk).


rule knn_graph:
    input:
        "results/activations/{probe}/{model}",
    output:
        directory("results/knn/{probe}/{model}"),
    log:
        "logs/knn/{probe}/{model}.log",
    benchmark:
        "benchmarks/knn/{probe}/{model}.tsv"
    group:
        "features_{model}"
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("knn")
    resources:
        **gpu_request(1 if lookup(dpath="resources/knn/gpu", within=config) else 0),
        mem_mb=stage_mem_mb("knn"),
        runtime=stage_runtime("knn"),
    params:
        k=2 * max(lookup(dpath="hrsa/knn_k", within=config)),  # retention@k reads 2k neighbours
        max_rows=lookup(dpath="hrsa/knn_max_rows", within=config),
        seed=lookup(dpath="hrsa/seed", within=config),
        layers=lambda wc: q(",".join(STUDY.layers(model_pair(wc.model), wc.probe))),
    shell:
        "hrsa knn --threads {threads} --activations {input:q} --layers {params.layers} --k {params.k}"
        " --max-rows {params.max_rows} --row-seed {params.seed} --out-dir {output:q} > {log:q} 2>&1"
