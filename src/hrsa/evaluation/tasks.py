"""Local mteb tasks over the files in data/eval/: three STS tasks and two retrieval tasks, all offline.

The data directory (the `data/` folder that holds `eval/`) is, in order: the `data_dir` argument of a task,
the environment variable HRSA_DATA_DIR, or `data/` at the root of the repository this package lives in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from datasets import Dataset, DatasetDict
from mteb._create_dataloaders import create_dataloader  # private, but the STS evaluator itself is built on it
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata, TaskType
from mteb.similarity_functions import compute_pairwise_similarity
from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances, paired_manhattan_distances

from hrsa.data import MATH_INSTRUCTION, VERSE_INSTRUCTION
from hrsa.errors import DataError

if TYPE_CHECKING:
    from mteb._evaluators.any_sts_evaluator import STSEvaluatorScores  # as mteb.abstasks.sts imports it

DATA_ENV = "HRSA_DATA_DIR"
# Bump when a file under data/eval changes meaning: mteb stores it as the dataset revision of every result.
DATA_REVISION = "hrsa-eval-v1"


def default_data_dir() -> Path:
    """`data/` of the repository that contains this source tree (src/hrsa/evaluation/tasks.py -> repo/data)."""
    return Path(__file__).resolve().parents[3] / "data"


def resolve_data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: argument, then $HRSA_DATA_DIR, then the repository's data/; it must hold eval/."""
    chosen = override or os.environ.get(DATA_ENV) or default_data_dir()
    path = Path(chosen).expanduser().resolve()
    if not (path / "eval").is_dir():
        raise DataError(f"data directory {path} has no eval/ folder (set {DATA_ENV} or pass data_dir)")
    return path


# ------------------------------------------------------------------------------------------------------- file readers
def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"missing evaluation file {path}")
    return path


def read_word_pairs(path: Path) -> dict[str, list[Any]]:
    """`# comment` lines, then `word1<TAB>word2<TAB>score` (gensim's wordsim353.tsv / simlex999.txt format)."""
    cols: dict[str, list[Any]] = {"sentence1": [], "sentence2": [], "score": []}
    for lineno, line in enumerate(_require(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            w1, w2, score = parts[0], parts[1], float(parts[2])
        except (IndexError, ValueError) as exc:
            raise DataError(f"{path}:{lineno}: expected word1<TAB>word2<TAB>score, got {line!r}") from exc
        cols["sentence1"].append(w1)
        cols["sentence2"].append(w2)
        cols["score"].append(score)
    return cols


def read_lee(directory: Path) -> dict[str, list[Any]]:
    """All i<j pairs of the 50 Lee documents with their mean human similarity (upper triangle of the matrix)."""
    text = _require(directory / "lee.cor").read_text(encoding="latin-1")  # the file is ISO-8859-1 (a '£' sign)
    docs = [ln.strip() for ln in text.splitlines() if ln.strip()]
    matrix_path = _require(directory / "similarities0-1.txt")
    rows = [[float(x) for x in ln.split()] for ln in matrix_path.read_text().splitlines() if ln.strip()]
    if len(docs) != 50 or len(rows) != 50 or any(len(r) != 50 for r in rows):
        raise DataError(f"{directory}: expected 50 documents and a 50x50 matrix, got {len(docs)} and {len(rows)} rows")
    cols: dict[str, list[Any]] = {"sentence1": [], "sentence2": [], "score": []}
    for i in range(50):
        for j in range(i + 1, 50):
            cols["sentence1"].append(docs[i])
            cols["sentence2"].append(docs[j])
            cols["score"].append(rows[i][j])
    return cols


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (missing file and malformed lines are reported with path and line)."""
    from hrsa.data import read_jsonl as read_rows

    return list(read_rows(_require(path)))


def read_retrieval(directory: Path) -> RetrievalSplitData:
    """queries.jsonl {id,text}, corpus.jsonl {id,title,text}, qrels.jsonl {query_id,doc_id,score} -> mteb split."""
    queries = read_jsonl(directory / "queries.jsonl")
    corpus = read_jsonl(directory / "corpus.jsonl")
    relevant: dict[str, dict[str, int]] = {}
    for row in read_jsonl(directory / "qrels.jsonl"):
        relevant.setdefault(str(row["query_id"]), {})[str(row["doc_id"])] = int(row["score"])
    return RetrievalSplitData(
        queries=Dataset.from_dict({"id": [str(q["id"]) for q in queries], "text": [q["text"] for q in queries]}),
        corpus=Dataset.from_dict(
            {
                "id": [str(d["id"]) for d in corpus],
                "text": [d["text"] for d in corpus],
                "title": [d.get("title", "") for d in corpus],
            }
        ),
        relevant_docs=relevant,
        top_ranked=None,
    )


# ------------------------------------------------------------------------------------------------------------ tasks
_COMMON: dict[str, Any] = {
    "category": "t2t",
    "eval_splits": ["test"],
    "eval_langs": ["eng-Latn"],
    "dialect": [],
    "modalities": ["text"],
}


def _metadata(name: str, type_: TaskType, main_score: str, path: str, **fields: Any) -> TaskMetadata:
    """TaskMetadata for a local task; the dataset path is the file's place under data/ (no hub involved)."""
    return TaskMetadata(
        name=name,
        type=type_,
        main_score=main_score,
        dataset={"path": f"local:data/{path}", "revision": DATA_REVISION},
        **_COMMON,
        **fields,
    )


class _LocalTask:
    """Mixin: remembers the data directory a task reads from (argument or environment, resolved lazily)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        self.data_dir_override = data_dir
        super().__init__(**kwargs)

    @property
    def eval_dir(self) -> Path:
        return resolve_data_dir(self.data_dir_override) / "eval"


class _LocalSTS(_LocalTask, AbsTaskSTS):
    """STS task whose single test split is built by `_columns()` from a local file; each distinct text is encoded once.

    mteb's STS evaluator encodes both columns in full; Lee50 has 50 documents in 1225 pairs, so encoding distinct
    texts only is ~25x cheaper on CPU. The metrics are computed exactly as mteb's AnySTSEvaluator does.
    """

    def _columns(self) -> dict[str, list[Any]]:
        raise NotImplementedError

    def _encode_distinct(self, model: Any, texts: list[str], encode_kwargs: Any, **where: Any) -> np.ndarray:
        """Embeddings of `texts` in order, computing each distinct text once."""
        distinct = list(dict.fromkeys(texts))
        loader = create_dataloader(Dataset.from_dict({"text": distinct}), task_metadata=self.metadata, **encode_kwargs)
        emb = np.asarray(model.encode(loader, task_metadata=self.metadata, prompt_type=None, **where, **encode_kwargs))
        row = {t: i for i, t in enumerate(distinct)}
        return emb[[row[t] for t in texts]]

    def _evaluate_subset(
        self,
        model: Any,
        data_split: Dataset,
        *,
        encode_kwargs: Any,
        hf_split: str,
        hf_subset: str,
        prediction_folder: Path | None = None,
        num_proc: int | None = None,
        timer: Any,
        **kwargs: Any,
    ) -> Any:
        where = {"hf_split": hf_split, "hf_subset": hf_subset}
        with timer("Encoding distinct texts", split=hf_split, subset=hf_subset):
            texts1, texts2 = list(data_split["sentence1"]), list(data_split["sentence2"])
            emb = self._encode_distinct(model, texts1 + texts2, encode_kwargs, **where)
            e1, e2 = emb[: len(texts1)], emb[len(texts1) :]
        with timer("Scoring", split=hf_split, subset=hf_subset):
            scores: STSEvaluatorScores = {
                "cosine_scores": (1 - paired_cosine_distances(e1, e2)).tolist(),
                "manhattan_distances": (-paired_manhattan_distances(e1, e2)).tolist(),
                "euclidean_distances": (-paired_euclidean_distances(e1, e2)).tolist(),
                "similarity_scores": np.asarray(compute_pairwise_similarity(model, e1, e2)).tolist(),
            }
        if prediction_folder:
            self._save_task_predictions(scores, model, prediction_folder, hf_subset=hf_subset, hf_split=hf_split)
        return self._calculate_scores(scores, list(map(self._normalize, data_split["score"])))

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        self.dataset = DatasetDict({"test": Dataset.from_dict(self._columns())})
        self.data_loaded = True


class _LocalRetrieval(_LocalTask, AbsTaskRetrieval):
    """Retrieval task read from `data/eval/<subdir>/{queries,corpus,qrels}.jsonl`."""

    subdir: str = ""

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        self.dataset = {"default": {"test": read_retrieval(self.eval_dir / self.subdir)}}
        self.data_loaded = True


class HrsaWordSim353(_LocalSTS):
    """WordSim-353 word-pair relatedness (0-10) as an STS task over single words."""

    min_score = 0
    max_score = 10
    metadata = _metadata(
        "HrsaWordSim353",
        "STS",
        "cosine_spearman",
        "eval/wordsim353.tsv",
        description="WordSim-353 word relatedness (353 pairs, human means 0-10), scored as STS over single words.",
        reference="https://gabrilovich.com/resources/data/wordsim353/wordsim353.html",
        date=("2001-01-01", "2002-01-01"),
        domains=["Written"],
        task_subtypes=[],
        license="not specified",
        annotations_creators="human-annotated",
        sample_creation="found",
        bibtex_citation="@article{finkelstein2002placing, title={Placing search in context: the concept revisited}, "
        "author={Finkelstein, Lev and others}, journal={ACM TOIS}, volume={20}, number={1}, year={2002}}",
    )

    def _columns(self) -> dict[str, list[Any]]:
        return read_word_pairs(self.eval_dir / "wordsim353.tsv")


class HrsaSimLex999(_LocalSTS):
    """SimLex-999 genuine similarity (0-10) as an STS task over single words."""

    min_score = 0
    max_score = 10
    metadata = _metadata(
        "HrsaSimLex999",
        "STS",
        "cosine_spearman",
        "eval/simlex999.txt",
        description="SimLex-999 word similarity (999 pairs, human means 0-10), scored as STS over single words.",
        reference="https://fh295.github.io/simlex.html",
        date=("2014-01-01", "2015-01-01"),
        domains=["Written"],
        task_subtypes=[],
        license="not specified",
        annotations_creators="human-annotated",
        sample_creation="found",
        bibtex_citation="@article{hill2015simlex, title={SimLex-999: Evaluating Semantic Models with (Genuine) "
        "Similarity Estimation}, author={Hill, Felix and Reichart, Roi and Korhonen, Anna}, "
        "journal={Computational Linguistics}, volume={41}, number={4}, year={2015}}",
    )

    def _columns(self) -> dict[str, list[Any]]:
        return read_word_pairs(self.eval_dir / "simlex999.txt")


class HrsaLee50(_LocalSTS):
    """Lee et al. (2005) 50 news documents: 1225 document pairs with mean human similarity in [0, 1]."""

    min_score = 0
    max_score = 1
    metadata = _metadata(
        "HrsaLee50",
        "STS",
        "cosine_spearman",
        "eval/lee",
        description="Lee, Pincombe & Welsh (2005) 50 Australian news documents; all 1225 pairs with mean human "
        "similarity, scored as document-level STS.",
        reference="https://www.researchgate.net/publication/228931525",
        date=("2002-01-01", "2005-01-01"),
        domains=["News", "Written"],
        task_subtypes=[],
        license="not specified",
        annotations_creators="human-annotated",
        sample_creation="found",
        bibtex_citation="@inproceedings{lee2005empirical, title={An empirical evaluation of models of text document "
        "similarity}, author={Lee, Michael D. and Pincombe, Brandon and Welsh, Matthew}, booktitle={CogSci}, "
        "year={2005}}",
    )

    def _columns(self) -> dict[str, list[Any]]:
        return read_lee(self.eval_dir / "lee")


class HrsaMiltonRetrieval(_LocalRetrieval):
    """Find the continuation of a Milton verse passage from its first two lines (400 candidate continuations)."""

    subdir = "milton_retrieval"
    metadata = _metadata(
        "HrsaMiltonRetrieval",
        "Retrieval",
        "ndcg_at_10",
        "eval/milton_retrieval",
        prompt={"query": VERSE_INSTRUCTION},  # the training instruction of the verse-continuation source
        description="Query: the first 2 lines of a 10-line passage of Paradise Lost, Paradise Regained or Comus; "
        "relevant document: its remaining 8 lines; distractors: the last 8 lines of other passages.",
        reference="https://www.gutenberg.org/ebooks/author/50",
        date=("1634-01-01", "1671-12-31"),
        domains=["Poetry", "Fiction", "Written"],
        task_subtypes=[],
        license="not specified",
        annotations_creators="derived",
        sample_creation="found",
        bibtex_citation="",
    )


class HrsaArithmeticReasoningRetrieval(_LocalRetrieval):
    """BRIGHT-like: find the worked solution of an arithmetic problem among solutions of problems with its numbers."""

    subdir = "arithmetic_reasoning"
    metadata = _metadata(
        "HrsaArithmeticReasoningRetrieval",
        "Retrieval",
        "ndcg_at_10",
        "eval/arithmetic_reasoning",
        prompt={"query": MATH_INSTRUCTION},  # the training instruction of the arithmetic source
        description="Query: a 1-2 step arithmetic problem (words, symbols or a story); relevant document: its "
        "worked solution; distractors: worked solutions of sibling problems over the same numbers.",
        reference="https://brightbenchmark.github.io/",
        date=("2025-01-01", "2025-12-31"),
        domains=["Constructed"],
        task_subtypes=["Reasoning as Retrieval"],
        license="mit",
        annotations_creators="algorithmic",
        sample_creation="created",
        bibtex_citation="",
    )


LOCAL_TASKS: dict[str, type] = {
    cls.metadata.name: cls
    for cls in (HrsaWordSim353, HrsaSimLex999, HrsaLee50, HrsaMiltonRetrieval, HrsaArithmeticReasoningRetrieval)
}


def local_task(name: str, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """An instance of the local task `name` reading from `data_dir` (or the default data directory)."""
    return LOCAL_TASKS[name](data_dir=data_dir)
