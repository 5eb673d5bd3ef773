"""Stage 1, segment + sign: every batch of documents split into paragraphs and analysed
(`features.analyse`), in forked workers under `--jobs`, written into one `FeatureTable`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import numpy as np

from . import kernels
from . import story as story_stage
from .feature_table import FeatureTable, Written
from .features import ParagraphFeatures, analyse, concat
from .forkpool import CAN_FORK, fork_map
from .minhash import MinHasher
from .settings import Progress, Settings


def sign(texts: list[str], settings: Settings, tick: Progress) -> ParagraphFeatures:
    """Features of every batch of documents' `texts`, written into one table as they are done
    (`feature_table`); in forked workers when `settings.jobs` > 1 (batches are independent; the
    workers inherit the texts, split them into paragraphs and write into the table's shared memory,
    so only a few numbers per batch travel back)."""
    n, size = len(texts), settings.batch_size
    spans = [(lo, min(n, lo + size)) for lo in range(0, n, size)] or [(0, 0)]

    def progress(k: int) -> None:
        tick("sign", spans[k - 1][1], n)

    if settings.jobs > 1:
        kernels.warm_up()  # every later pool's workers inherit the loaded kernels
    try:
        table = FeatureTable(texts, spans, settings.num_perm, key_cues=settings.chrome, terms=settings.story,
                             shared=settings.jobs > 1 and CAN_FORK, min_words=settings.min_words)
    except (OSError, ValueError, MemoryError):  # address space or overcommit refused: join the batches after
        parts = fork_map(_analyse_span, (texts, settings), spans, settings.jobs, progress)
        return concat(parts, [lo for lo, _ in spans])
    written = fork_map(_write_span, (texts, settings, table), list(range(len(spans))), settings.jobs, progress)
    return table.join(written, settings.jobs)


def _analyse_span(context: tuple[list[str], Settings], span: tuple[int, int]) -> ParagraphFeatures:
    """Features of documents [lo, hi); a top-level function so forked workers can run it."""
    texts, s = context
    return analyse(texts[span[0] : span[1]], _hasher(s.num_perm, s.seed), s.ngram, s.min_words,
                   key_cues=s.chrome, terms=s.story)


def _write_span(context: tuple[list[str], Settings, FeatureTable], batch: int) -> Written:
    """Features of batch `batch`, written into the table (a top-level function so forked workers can run it)."""
    texts, s, table = context
    return table.write(batch, _analyse_span((texts, s), table.spans[batch]))


def numbered_terms(feats: ParagraphFeatures) -> tuple[story_stage.TermRows, ParagraphFeatures]:
    """The paragraphs' story terms as the story stage takes them (`concat` has numbered them
    corpus-wide), and the features without them: the story stage owns them from here on."""
    terms = story_stage.TermRows(feats.term_ids, feats.term_offsets[: len(feats.doc) + 1], len(feats.term_vocabulary))
    return terms, replace(feats, term_ids=np.zeros(0, dtype=np.int32), term_vocabulary=np.zeros(0, dtype=np.uint64),
                          term_offsets=np.zeros(1, dtype=np.int64))


@lru_cache(maxsize=4)
def _hasher(num_perm: int, seed: int) -> MinHasher:
    return MinHasher(num_perm, seed)


def document_rank(ids: Sequence[str]) -> np.ndarray:
    """Position of each document in (id, input position) order: a tie-break independent of input order."""
    order = sorted(range(len(ids)), key=lambda k: (ids[k], k))
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank
