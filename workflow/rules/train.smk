# Contrastive training of every role per seed into an embedder ("-E" model), resumable from checkpoints.


rule train_embedder:
    input:
        backbone=lambda wc: model_input(f"{wc.pair}.{wc.role}"),
        data=training_records(),
    output:
        directory("results/embedders/{pair}.{role}-E.s{seed}"),
    log:
        "logs/train/{pair}.{role}-E.s{seed}.log",
    benchmark:
        "benchmarks/train/{pair}.{role}-E.s{seed}.tsv"
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=lambda wc, attempt: 720 * attempt,
    params:
        backbone=lambda wc: q(model_path(f"{wc.pair}.{wc.role}")),
        recipe=lambda wc: as_json(
            {
                **STUDY.training(wc.pair),
                "num_negatives": lookup(
                    dpath="training_data/num_negatives", within=config
                ),
            }
        ),
        device=lookup(dpath="device", within=config),
        checkpoints="results/checkpoints/{pair}.{role}-E.s{seed}",
        trust=lambda wc: trust_flag(wc.pair),
    shell:
        "hrsa train --threads {threads} --backbone {params.backbone} --data {input.data} --seed {wildcards.seed}"
        " --recipe {params.recipe} --device {params.device} --checkpoints {params.checkpoints}"
        " --model-id {wildcards.pair}.{wildcards.role}-E.s{wildcards.seed} --out {output} {params.trust} > {log} 2>&1"
