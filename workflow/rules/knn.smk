# Exact kNN graphs of every layer of one (model, probe) in one job (FAISS; on the GPU when the job has one), computed
# once and shared by every comparison. Submitted with the model's extractions (group features_{model}, extract.smk).


rule knn_graph:
    input:
        paths.ACTIVATIONS,
    output:
        directory(paths.KNN),
    log:
        paths.LOG_KNN,
    benchmark:
        paths.BENCH_KNN
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
        # knn_k, knn_max_rows and seed: the verb sizes the graphs from the metric registry
        config=as_json(knn_config(lookup(dpath="hrsa", within=config))),
        layers=lambda wc: q(",".join(STUDY.layers(model_pair(wc.model), wc.probe))),
    shell:
        "hrsa knn --threads {threads} --activations {input:q} --layers {params.layers} --config {params.config}"
        " --out-dir {output:q} > {log:q} 2>&1"
