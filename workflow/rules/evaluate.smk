# mteb scoring: one job per (embedder, task); results cached by model name + weights revision.


rule evaluate:
    input:
        "results/embedders/{model}",
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
        runtime=lambda wc, attempt: 240 * attempt,
    params:
        batch_size=lookup(dpath="evaluation/batch_size", within=config),
        device=lookup(dpath="device", within=config),
        task=lambda wc: q(wc.task),
        benchmark=lambda wc: benchmark_flag(wc.task),
        instructions=lookup(dpath="evaluation/instructions", within=config),
        overrides=lambda wc: as_json(task_instruction_override(wc.task)),
    shell:
        "hrsa evaluate --threads {threads} --model {input} --task {params.task} {params.benchmark} --model-name hrsa/{wildcards.model}"
        " --revision $(cat {input}/revision.txt) --cache results/mteb-cache --batch-size {params.batch_size}"
        " --device {params.device} --instructions {params.instructions} --task-instructions {params.overrides}"
        " --out {output} > {log} 2>&1"
