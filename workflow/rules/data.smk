# Training data for the contrastive recipe (optionally re-mined hard negatives) and the probe sets fed to every model.
# Preparation is light (reading and sampling records): it runs in the submitting process, never as a cluster job.


localrules:
    prepare_training_data,
    prepare_probe,


rule prepare_training_data:
    input:
        hub=hub_cache(),
    output:
        paths.TRAIN_PREPARED,
    log:
        paths.LOG_TRAIN_DATA,
    benchmark:
        paths.BENCH_TRAIN_DATA
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        **LOCAL_RESOURCES["prepare_training_data"],
    params:
        config=as_json(prepared_data_spec()),
        root=q(repo_path(".")),
    shell:
        "hrsa make-data train --threads {threads} --config {params.config} --root {params.root} --out {output:q} > {log:q} 2>&1"


rule mine_hard_negatives:
    input:
        data=paths.TRAIN_PREPARED,
        hub=hub_cache(),
    output:
        paths.TRAIN_MINED,
    log:
        paths.LOG_MINE,
    benchmark:
        paths.BENCH_MINE
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("mine")
    resources:
        **gpu_request(1),
        mem_mb=stage_mem_mb("mine"),
        runtime=stage_runtime("mine"),
    params:
        model=q(lookup(dpath="training_data/mine/model", within=config)),
        num_negatives=lookup(dpath="training_data/num_negatives", within=config),
        margin=lookup(dpath="training_data/mine/relative_margin", within=config),
        range_max=lookup(dpath="training_data/mine/range_max", within=config),
        trust=trust_option(
            lookup(dpath="training_data/mine/trust_remote_code", within=config)
        ),
        replace=mine_replace_flag(),
    shell:
        "hrsa mine --threads {threads} --data {input.data:q} --model {params.model} --num-negatives {params.num_negatives}"
        " --relative-margin {params.margin} --range-max {params.range_max} --gpus {resources.gpu_slots}"
        " --out {output:q} {params.trust} {params.replace} > {log:q} 2>&1"


rule prepare_probe:
    input:
        hub=hub_cache(),
    output:
        paths.PROBE,
    log:
        paths.LOG_PROBE,
    benchmark:
        paths.BENCH_PROBE
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        **LOCAL_RESOURCES["prepare_probe"],
    params:
        config=lambda wc: as_json(STUDY.probes[wc.probe]),
        root=q(repo_path(".")),
    shell:
        "hrsa make-data probe --threads {threads} --config {params.config} --root {params.root} --out {output:q} > {log:q} 2>&1"
