# Contrastive training of every role per seed into an embedder ("-E" model), resumable from checkpoints.


rule train_embedder:
    input:
        backbone=lambda wc: model_input(f"{wc.pair}.{wc.role}"),
        data=training_records(),
        hub=hub_cache(),
    output:
        embedder=directory(paths.EMBEDDER),
        health=paths.TRAIN_HEALTH,
    log:
        paths.LOG_TRAIN,
    benchmark:
        paths.BENCH_TRAIN.format(model="{pair}.{role}-E.s{seed}")
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("train")
    resources:
        **gpu_request(lambda wc: training_devices(wc.pair)),
        mem_mb=lambda wc: stage_mem_mb("train", wc.pair),
        runtime=lambda wc, attempt: stage_runtime("train", wc.pair, attempt),
    params:
        backbone=lambda wc: q(model_path(f"{wc.pair}.{wc.role}")),
        config=lambda wc: as_json(STUDY.training(wc.pair)),
        num_negatives=lookup(dpath="training_data/num_negatives", within=config),
        checkpoints=lambda wc: q(
            paths.TRAIN_CHECKPOINTS.format(model=f"{wc.pair}.{wc.role}-E.s{wc.seed}")
        ),
        trust=lambda wc: trust_flag(wc.pair),
        model_id=lambda wc: q(f"{wc.pair}.{wc.role}-E.s{wc.seed}"),
        launch=lambda wc: training_launcher(wc.pair),
    shell:
        "{params.launch}hrsa train --threads {threads} --backbone {params.backbone} --data {input.data:q} --seed {wildcards.seed:q}"
        " --config {params.config} --num-negatives {params.num_negatives} --gpus {resources.gpu_slots}"
        " --checkpoints {params.checkpoints} --model-id {params.model_id} --out {output.embedder:q} --health {output.health:q} {params.trust} > {log:q} 2>&1"
