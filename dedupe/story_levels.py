"""Stage 7 over a scan: the story stage (`story`) at document level (one unit per copy group) and
at paragraph level (one unit per paragraph copy group), clustered with the chaining guard."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import story as story_stage
from .cluster import Group, Groups, cluster
from .features import ParagraphFeatures
from .model import Document


def document_story_units(docs: Sequence[Document], feats: ParagraphFeatures, terms: story_stage.TermRows,
                         content: np.ndarray, doc_groups: list[Group], kept: dict[int, int],
                         rank: np.ndarray) -> tuple[np.ndarray, story_stage.TermRows, np.ndarray]:
    """The story stage's documents: one unit per copy group, the kept copy standing for it
    (archived documents are not units), with the terms of its content paragraphs, or of all of
    them when it has none (`terms` are the paragraphs', numbered once for both levels); and
    their ranks among themselves."""
    unit = np.ones(len(docs), dtype=bool)
    for k, g in enumerate(doc_groups):
        unit[[int(m) for m in g.members if int(m) != kept[k] and int(m) < len(docs)]] = False
    units = np.flatnonzero(unit)
    has_content = np.bincount(feats.doc[content], minlength=len(docs)) > 0
    rows = np.flatnonzero(unit[feats.doc] & (content | ~has_content[feats.doc]))  # in document order

    return units, terms.unions(rows, np.bincount(feats.doc[rows], minlength=len(docs))[units]), rank[units]


def paragraph_story_units(feats: ParagraphFeatures, para_groups: Groups,
                          rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The story stage's paragraphs: every signed paragraph (a related-article teaser retelling a
    story counts), one per paragraph copy group; and their ranks among themselves."""
    unit = feats.sig_row >= 0
    unit[para_groups.others()] = False
    para_units = np.flatnonzero(unit)
    return para_units, np.argsort(np.lexsort((feats.index[para_units], rank[feats.doc[para_units]])))


def paragraph_story(context: tuple[story_stage.TermRows, tuple[np.ndarray, np.ndarray], int],
                    _: int) -> list[tuple[list[int], list[float]]]:
    """The story stage's paragraph level (a top-level function, so a forked process can run it)."""
    terms, (units, ranks), jobs = context
    return story_groups(terms.take(units), story_stage.StorySettings(), ranks, jobs)


def story_groups(terms: story_stage.TermRows, settings: story_stage.StorySettings,
                 rank: np.ndarray, jobs: int) -> list[tuple[list[int], list[float]]]:
    """Story clusters over texts' terms: pairs from the story stage, clustered with the chaining guard."""
    first, second, sims = story_stage.story_pair_arrays(terms, settings, jobs)
    if not len(first):
        return []
    n = np.int64(len(terms))
    found = first * n + second  # sorted, as the pairs are

    def pair_similarity(one: np.ndarray, other: np.ndarray) -> np.ndarray:
        lo, hi = np.minimum(one, other), np.maximum(one, other)
        at = np.minimum(np.searchsorted(found, lo * n + hi), len(found) - 1)
        return np.where(found[at] == lo * n + hi, sims[at], 0.0)

    def similarity(rep: int, others: np.ndarray) -> np.ndarray:
        return pair_similarity(np.full(len(others), rep, dtype=np.int64), others)

    groups = cluster(len(terms), np.stack([first, second], axis=1), rank, similarity, settings.min_similarity,
                     pair_similarity)
    return [([int(m) for m in g.members], [float(s) for s in g.similarity]) for g in groups]
