# Backbones built by recipe: the tiny pretrained base, and RLVR (GRPO) / SFT siblings of any base.


rule build_backbone:
    input:
        parent=lambda wc: backbone_parent(wc.pair, wc.role),
        hub=hub_cache(),
    output:
        directory(paths.BACKBONE),
    log:
        paths.LOG_BACKBONE,
    benchmark:
        paths.BENCH_BACKBONE
    wildcard_constraints:
        role="base|reason|sft",
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("backbone")
    resources:
        **gpu_request(
            lambda wc: (
                0 if STUDY.backbone(wc.pair, wc.role).recipe == "pretrain" else 1
            )
        ),
        mem_mb=lambda wc: stage_mem_mb("backbone", wc.pair),
        runtime=lambda wc: stage_runtime("backbone", wc.pair),
    params:
        verb=lambda wc: q(STUDY.backbone(wc.pair, wc.role).recipe),
        source=lambda wc: recipe_source(wc.pair, wc.role),
        config=lambda wc: recipe_config(wc.pair, wc.role),
        trust=lambda wc: recipe_trust_flag(wc.pair, wc.role),
    shell:
        "hrsa {params.verb} --threads {threads} --out {output:q} {params.source} --config {params.config} {params.trust} > {log:q} 2>&1"
