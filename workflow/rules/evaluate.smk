# mteb scoring: one job per (embedder or baseline, group of tasks), one model load per job; results cached by model
# name + weights revision, so a killed or failed job re-scores only what is missing. One rule per task group
# (evaluate_0, evaluate_1, ...): rerun one group of one model by naming its result files.

from hrsa.evaluation.run import eval_flags

for index, chunk in enumerate(evaluation_chunks()):

    rule:
        name:
            f"evaluate_{index}"
        input:
            model=lambda wc: eval_model_dir(wc.model),
            hub=hub_cache(),
        output:
            expand("results/eval/{{model}}/{task}.json", task=chunk),
        log:
            f"logs/eval/{{model}}/group{index}.log",
        benchmark:
            f"benchmarks/eval/{{model}}/group{index}.tsv"
        conda:
            "../../envs/hrsa.yaml"
        threads: stage_threads("evaluate")
        resources:
            **gpu_request(1),
            mem_mb=lambda wc: stage_mem_mb("evaluate", model_pair(wc.model)),
            runtime=lambda wc, attempt, n=len(chunk): stage_runtime(
                "evaluate", model_pair(wc.model), attempt, tasks=n
            ),
        params:
            batch_size=lookup(dpath="evaluation/batch_size", within=config),
            device=q(lookup(dpath="device", within=config)),
            tasks=" ".join(f"--task {q(task)}" for task in chunk),
            benchmark=benchmark_flag(chunk[0]),
            instructions=q(lookup(dpath="evaluation/instructions", within=config)),
            model_name=lambda wc: q(f"hrsa/{wc.model}"),
            out_dir=lambda wc: q(f"results/eval/{wc.model}"),
            trust=lambda wc: trust_flag(model_pair(wc.model)),
            overrides=as_json(
                {
                    t: i
                    for task in chunk
                    for t, i in task_instruction_override(task).items()
                }
            ),
            scoring=shlex.join(
                eval_flags(
                    chunk[0],
                    EVAL_BENCHMARKS.get(chunk[0]),
                    lookup(dpath="evaluation", within=config, default={}),
                    EVAL_BENCHMARKS,
                    repo_path("."),
                )
            ),
        shell:
            "hrsa evaluate --threads {threads} --model {input.model:q} {params.tasks} {params.benchmark} --model-name {params.model_name}"
            ' --revision "$(cat {input.model:q}/revision.txt)" --cache results/mteb-cache --batch-size {params.batch_size}'
            " --device {params.device} --instructions {params.instructions} --task-instructions {params.overrides} {params.scoring}"
            " --out-dir {params.out_dir} {params.trust} > {log:q} 2>&1"
