# Exact kNN graphs of every layer of one (model, probe) in one job (FAISS; on the GPU when the job has one), computed
# once and shared by every comparison.


rule knn_graph:
    input:
        "results/activations/{probe}/{model}",
    output:
        directory("results/knn/{probe}/{model}"),
    log:
        "logs/knn/{probe}/{model}.log",
    benchmark:
        "benchmarks/knn/{probe}/{model}.tsv"
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    params:
        k=2 * max(lookup(dpath="hrsa/knn_k", within=config)),  # retention@k reads 2k neighbours
        layers=lambda wc: q(
            ",".join(STUDY.layers(parse_model_id(wc.model)[0], wc.probe))
        ),
    shell:
        "hrsa knn --threads {threads} --activations {input:q} --layers {params.layers} --k {params.k}"
        " --out-dir {output:q} > {log:q} 2>&1"
