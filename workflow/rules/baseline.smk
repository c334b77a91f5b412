# Raw backbones saved as untrained embedders (mean pooling, the study's attention and prompts) when
# evaluation.baseline is on; the evaluate rule scores them like embedders, into results/eval/{pair}.{role}/.

from hrsa.baseline import baseline_recipe


rule baseline_embedder:
    input:
        backbone=lambda wc: model_input(f"{wc.pair}.{wc.role}"),
        hub=hub_cache(),
    output:
        directory(paths.BASELINE),
    log:
        paths.LOG_BASELINE,
    benchmark:
        paths.BENCH_BASELINE
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("baseline")
    resources:
        **gpu_request(0),  # saving an untrained embedder needs no GPU; the device follows the request (CPU)
        mem_mb=lambda wc: stage_mem_mb("baseline", wc.pair),
        runtime=lambda wc: stage_runtime("baseline", wc.pair),
    params:
        backbone=lambda wc: q(model_path(f"{wc.pair}.{wc.role}")),
        config=lambda wc: as_json(baseline_recipe(STUDY.training(wc.pair))),
        trust=lambda wc: trust_flag(wc.pair),
        model_id=lambda wc: q(f"{wc.pair}.{wc.role}"),
    shell:
        "hrsa baseline --threads {threads} --backbone {params.backbone} --config {params.config}"
        " --model-id {params.model_id} --gpus {resources.gpu_slots} --out {output:q} {params.trust} > {log:q} 2>&1"
