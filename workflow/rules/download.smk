# Hub models and datasets fetched on the login node (a local rule) before anything else, so that every other job can
# run on compute nodes without network (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1), from the shared Hugging Face cache.

from hrsa.download import plan_config


localrules:
    download,


rule download:
    output:
        DOWNLOADED,
    log:
        paths.LOG_DOWNLOAD,
    benchmark:
        paths.BENCH_DOWNLOAD
    conda:
        "../../envs/hrsa.yaml"
    threads: 1
    resources:
        **LOCAL_RESOURCES["download"],
    params:
        config=as_json(plan_config(config)),
        root=q(repo_path(".")),
    shell:
        "env -u HF_HUB_OFFLINE -u HF_DATASETS_OFFLINE hrsa download --threads {threads} --config {params.config}"
        " --root {params.root} --out {output:q} > {log:q} 2>&1"
