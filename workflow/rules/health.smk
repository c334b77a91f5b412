# Sibling health: greedy pass@1 of every role on the siblings.sets problem sets, and each sibling's gain over its
# base and relative weight change (a sibling whose gain is below siblings.min_gain fails its job).


rule sibling_health:
    input:
        model=lambda wc: model_input(f"{wc.pair}.{wc.role}"),
        base=lambda wc: model_input(f"{wc.pair}.base") if wc.role != "base" else [],
        base_health=lambda wc: (
            paths.HEALTH.format(pair=wc.pair, role="base") if wc.role != "base" else []
        ),
        hub=hub_cache(),
    output:
        paths.HEALTH,
    log:
        paths.LOG_HEALTH,
    benchmark:
        paths.BENCH_HEALTH
    wildcard_constraints:
        role="base|reason|sft",
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("health")
    resources:
        **gpu_request(1),
        mem_mb=lambda wc: stage_mem_mb("health", wc.pair),
        runtime=lambda wc: stage_runtime("health", wc.pair),
    params:
        model=lambda wc: q(model_path(f"{wc.pair}.{wc.role}")),
        base=lambda wc: health_base_flags(wc.pair, wc.role),
        config=as_json(lookup(dpath="siblings", within=config)),
        trust=lambda wc: trust_flag(wc.pair),
    shell:
        "hrsa health --threads {threads} --gpus {resources.gpu_slots} --model {params.model} {params.base}"
        " --config {params.config} {params.trust} --out {output:q} > {log:q} 2>&1"
