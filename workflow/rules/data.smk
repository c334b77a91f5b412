# Training data for the contrastive recipe and the probe sets fed to every model.


rule prepare_training_data:
    output:
        "results/data/train.jsonl",
    log:
        "logs/data/train.log",
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=as_json(lookup(dpath="training_data", within=config)),
        root=q(REPO),
    shell:
        "hrsa make-data train --threads {threads} --spec {params.spec} --root {params.root} --out {output} > {log} 2>&1"


rule prepare_probe:
    output:
        "results/data/probes/{probe}.jsonl",
    log:
        "logs/data/probe.{probe}.log",
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        spec=lambda wc: as_json(STUDY.probes[wc.probe]),
        root=q(REPO),
    shell:
        "hrsa make-data probe --threads {threads} --spec {params.spec} --root {params.root} --out {output} > {log} 2>&1"
