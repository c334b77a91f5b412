# One forward pass per batch writes every layer of a model on a probe set as Parquet shards;
# finished shards wait in results/checkpoints/extract/ so a killed job resumes where it stopped. On a cluster, group
# features_{model} makes one submission of a model's extractions and kNN graphs over every probe (group-components in
# profiles/slurm); run locally, groups are ignored.


rule extract_activations:
    input:
        model=lambda wc: model_input(wc.model),
        probe=paths.PROBE,
        hub=hub_cache(),
    output:
        directory(paths.ACTIVATIONS),
    log:
        paths.LOG_EXTRACT,
    benchmark:
        paths.BENCH_EXTRACT
    group:
        "features_{model}"
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("extract")
    resources:
        **gpu_request(1),
        mem_mb=lambda wc: stage_mem_mb("extract", model_pair(wc.model)),
        runtime=lambda wc: stage_runtime("extract", model_pair(wc.model)),
    params:
        model=lambda wc: q(model_path(wc.model)),
        layers=lambda wc: q(",".join(STUDY.layers(model_pair(wc.model), wc.probe))),
        probe=lambda wc: as_json(STUDY.probes[wc.probe]),
        dtype=q(lookup(dpath="activation_dtype", within=config)),
        trust=lambda wc: trust_flag(model_pair(wc.model)),
        batch_size=lookup(dpath="activations/batch_size", within=config),
        shard_rows=lookup(dpath="activations/shard_rows", within=config),
        compression=q(lookup(dpath="activations/compression", within=config)),
        work=lambda wc: q(paths.EXTRACT_WORK.format(probe=wc.probe, model=wc.model)),
        attention=q(lookup(dpath="activations/attention", within=config)),
        precision=q(lookup(dpath="activations/precision", within=config)),
    shell:
        "hrsa extract --threads {threads} --model {params.model} --model-id {wildcards.model:q}"
        " --probe {input.probe:q} --config {params.probe} --layers {params.layers}"
        " --dtype {params.dtype} --gpus {resources.gpu_slots} --batch-size {params.batch_size}"
        " --shard-rows {params.shard_rows} --compression {params.compression} --attention {params.attention}"
        " --precision {params.precision}"
        " --work-dir {params.work} --out {output:q} {params.trust} > {log:q} 2>&1"
