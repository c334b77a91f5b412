# mteb scoring: one job per (embedder or baseline, task); results cached by model name + weights revision.

from hrsa.evaluation.run import eval_flags


rule evaluate:
    input:
        model=lambda wc: eval_model_dir(wc.model),
        hub=hub_cache(),
    output:
        "results/eval/{model}/{task}.json",
    log:
        "logs/eval/{model}/{task}.log",
    benchmark:
        "benchmarks/eval/{model}/{task}.tsv"
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=240,
    params:
        batch_size=lookup(dpath="evaluation/batch_size", within=config),
        device=q(lookup(dpath="device", within=config)),
        task=lambda wc: q(wc.task),
        benchmark=lambda wc: benchmark_flag(wc.task),
        instructions=q(lookup(dpath="evaluation/instructions", within=config)),
        model_name=lambda wc: q(f"hrsa/{wc.model}"),
        trust=lambda wc: trust_flag(parse_model_id(wc.model)[0]),
        overrides=lambda wc: as_json(task_instruction_override(wc.task)),
        scoring=lambda wc: shlex.join(
            eval_flags(
                wc.task,
                EVAL_BENCHMARKS.get(wc.task),
                lookup(dpath="evaluation", within=config, default={}),
                EVAL_BENCHMARKS,
                repo_path("."),
            )
        ),
    shell:
        "hrsa evaluate --threads {threads} --model {input.model:q} --task {params.task} {params.benchmark} --model-name {params.model_name}"
        ' --revision "$(cat {input.model:q}/revision.txt)" --cache results/mteb-cache --batch-size {params.batch_size}'
        " --device {params.device} --instructions {params.instructions} --task-instructions {params.overrides} {params.scoring}"
        " --out {output:q} {params.trust} > {log:q} 2>&1"
