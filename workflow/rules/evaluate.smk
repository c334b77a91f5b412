# mteb scoring: one job per (embedder or baseline, group of tasks), one model load per job; results cached by model
# name + weights revision, so a killed or failed job re-scores only what is missing.
# One rule over a {group} wildcard: EVAL_GROUPS (common.smk) holds {group: [task, ...]}, tasks sharing a benchmark and
# max_seq_length, at most evaluation.tasks_per_job per group, named `<benchmark or 'tasks'>-<max_seq_length or
# 'saved'>-<i>` (characters outside [A-Za-z0-9_.-] made '_'; i counts the groups of that prefix in config order),
# e.g. `tasks-saved-0`, `MTEB_Multilingual_v2-saved-2`, `BRIGHT_v1.1-8192-0`. The declared output is the group's
# summary (results/eval/{model}/groups/{group}.json, written last); the job also writes results/eval/{model}/{task}.json
# per task of the group, which the report reads. Target one group of one model by its summary, force every evaluation
# with `-R evaluate`.


rule evaluate:
    input:
        model=lambda wc: eval_model_dir(wc.model),
        hub=hub_cache(),
    output:
        paths.EVAL_GROUP,
    log:
        paths.LOG_EVAL,
    benchmark:
        paths.BENCH_EVAL
    conda:
        "../../envs/hrsa.yaml"
    threads: stage_threads("evaluate")
    resources:
        **gpu_request(1),
        mem_mb=lambda wc: stage_mem_mb("evaluate", model_pair(wc.model)),
        runtime=lambda wc, attempt: stage_runtime(
            "evaluate", model_pair(wc.model), attempt, tasks=len(EVAL_GROUPS[wc.group])
        ),
    params:
        tasks=lambda wc: " ".join(f"--task {q(task)}" for task in EVAL_GROUPS[wc.group]),
        benchmark=lambda wc: benchmark_flag(EVAL_GROUPS[wc.group][0]),
        model_name=lambda wc: q(f"hrsa/{wc.model}"),
        out_dir=lambda wc: q(paths.EVAL_DIR.format(model=wc.model)),
        trust=lambda wc: trust_flag(model_pair(wc.model)),
        config=lambda wc: as_json(eval_job_config(wc.group)),
        cache=paths.MTEB_CACHE,
    shell:
        "hrsa evaluate --threads {threads} --model {input.model:q} {params.tasks} {params.benchmark} --model-name {params.model_name}"
        ' --revision "$(cat {input.model:q}/revision.txt)" --cache {params.cache} --gpus {resources.gpu_slots}'
        " --config {params.config} --out-dir {params.out_dir} --out {output:q} {params.trust} > {log:q} 2>&1"
