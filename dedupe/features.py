"""Stage "segment + sign": per-batch features of documents and their paragraphs.

Everything later works on these arrays, not on text: exact keys (128-bit hashes of normalised
text), chrome's cues of each line key (its hash, length, words and stop words), word counts, and
MinHash signatures of the paragraphs long enough to be compared as copies. A batch's features are
independent of every other batch, so this stage can run anywhere (another process, a Dask worker)
and the results be concatenated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np
import xxhash

from . import kernels, kernels_rows
from .arrays import unique_sorted
from .chrome import ChromeSettings, text_flags_of
from .kernels import Packed, pack_paragraphs, sign_paragraphs
from .kernels_lines import line_keys_with_cues
from .kernels_segment import BatchSpans, split_batch
from .minhash import MinHasher
from .normalize import normalize, utf8
from .story import term_ids_of_batch, term_ids_of_words


@dataclass(frozen=True, slots=True)
class ParagraphFeatures:
    """Arrays over all paragraphs of a batch, in document order.

    `doc` is the batch-local document index; `signed` marks paragraphs with at least `min_words`
    words, whose signature rows are `signatures[sig_row[k]]` (other paragraphs have sig_row -1).
    `shingle_hashes`/`shingle_offsets` hold the distinct shingle hashes of the signed paragraphs,
    used to count distinct shingles per document for containment.
    """

    doc: np.ndarray  # int64
    index: np.ndarray  # int64, paragraph index within its document
    line: np.ndarray  # int64, 1-based line in the document text it starts on...
    end: np.ndarray  # int64, ...and ends on
    start: np.ndarray  # int64, where it lies in the document text (`segment.split_spans`)...
    stop: np.ndarray  # int64, ...so that `segment.paragraph_text` gives it back
    words: np.ndarray  # int64
    chars: np.ndarray  # int64
    key_hi: np.ndarray  # uint64, exact key (normalised text), high half
    key_lo: np.ndarray  # uint64, low half
    sig_row: np.ndarray  # int64
    signatures: np.ndarray  # (signed paragraphs x num_perm) uint32
    shingle_hashes: np.ndarray  # uint32
    shingle_offsets: np.ndarray  # int64, per signed paragraph
    # Chrome's cues when asked for, per paragraph: its line key's length in characters, words, stop
    # words and hash (`kernels_lines.LineKeys`; worked out here once, the keys themselves not kept).
    key_chars: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    key_words: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    key_stops: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    key_hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    # ... and what its text says (`chrome.text_flags`, with the default `ChromeSettings` the pipeline
    # classifies with: sentence, list item, boilerplate phrase, ...).
    line_flags: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    # Story terms when asked for: paragraph k's are term_ids[term_offsets[k]:term_offsets[k+1]], ids into
    # the sorted distinct 64-bit stem hashes `term_vocabulary` (one flat array, so a batch's terms cross
    # processes as one buffer, not an array per paragraph).
    term_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    term_vocabulary: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    term_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))

    def terms(self, k: int) -> np.ndarray:
        """Story term hashes of paragraph k (empty when terms were not asked for)."""
        if k + 1 >= len(self.term_offsets):
            return self.term_vocabulary[:0]
        return self.term_vocabulary[self.term_ids[self.term_offsets[k] : self.term_offsets[k + 1]]]


def exact_key(normalised: str) -> tuple[int, int]:
    """128-bit hash of normalised text as two 64-bit halves; collisions are negligible at any scale."""
    value = xxhash.xxh3_128_intdigest(utf8(normalised))
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


def _exact_keys(batch: Packed) -> tuple[np.ndarray, np.ndarray]:
    """`exact_key` of every packed text, hashed from the packed buffer where it holds the normalised
    text itself (ASCII), else from the normalised form made as the text was packed."""
    view = batch.buf.data
    bounds = batch.offsets.tolist()
    digests = [xxhash.xxh3_128_digest(view[a:b]) for a, b in pairwise(bounds)]
    if batch.forms is not None:
        normal = batch.forms.normal.data
        for k, (a, b) in zip(batch.unicode.tolist(), pairwise(batch.forms.normal_offsets.tolist()), strict=True):
            digests[k] = xxhash.xxh3_128_digest(normal[a:b])
    halves = np.frombuffer(b"".join(digests), dtype=">u8").reshape(-1, 2)  # canonical form: high half first
    return halves[:, 0].astype(np.uint64), halves[:, 1].astype(np.uint64)


def analyse(texts: Sequence[str], hasher: MinHasher, ngram: int, min_words: int, *,
            key_cues: bool = False, terms: bool = False) -> ParagraphFeatures:
    """Segment one batch of documents' texts into paragraphs, then normalise, shingle and sign them.

    Segmenting here, in the worker that has the batch, leaves no paragraph object or copy of text
    in the process that joins the batches: a paragraph is found again by where it lies
    (`start`/`stop`, `segment.paragraph_text`) in the few places its text is shown or stripped.
    With numba, the batch is normalised into one buffer (`kernels.pack_paragraphs`), and the exact
    keys, tokens, shingles, signatures, line keys and story words are all read from it; without,
    Python normalises each paragraph and the same functions take the strings.
    Chrome's cues (of the line key and of the text) and story's content terms, when asked for, are
    derived here, once per paragraph, so they also run in the worker that has the batch.

    A paragraph's features depend on its text alone, and scraped pages repeat their chrome on page
    after page (of the dev set's 145k lines, 47k are distinct), so each distinct short text of the
    batch is analysed once and its features copied to the paragraphs that hold it.
    """
    found = split_batch(texts)
    held = found.texts  # the batch's paragraphs' texts
    count = len(held)
    first = np.searchsorted(found.doc, found.doc)  # each paragraph's document's first paragraph
    chars = _lengths(found)
    distinct, of = _distinct_texts(held, chars)
    per_text = _text_features(distinct, hasher, ngram, min_words, key_cues, terms)
    return ParagraphFeatures(
        doc=found.doc,
        index=np.arange(count, dtype=np.int64) - first,
        line=found.line,
        end=found.end,
        start=found.start,
        stop=found.stop,
        chars=chars,
        **(per_text if of is None else _for_each_paragraph(per_text, of)),
    )


def _lengths(found: BatchSpans) -> np.ndarray:
    """Each paragraph's length in characters: its span's, but for a hard-wrapped block's (its lines
    joined by single spaces). Read from the spans, not from a batch of strings scattered in memory."""
    chars = found.stop - found.start
    wrapped = np.flatnonzero(found.end > found.line)
    chars[wrapped] = [len(found.texts[k]) for k in wrapped.tolist()]
    return chars


def _distinct_texts(texts: list[str], chars: np.ndarray) -> tuple[list[str], np.ndarray | None]:
    """The batch's texts with each short one (below `_REPEATED_CHARS`, `chars` the lengths) kept
    once, in the order they first come, and the place of each paragraph's text among them (None
    when no text repeats). Long texts are not looked up: they seldom repeat inside a batch, and
    hashing them costs what their analysis saves; only the short ones are walked in Python."""
    seen: dict[str, int] = {}
    repeats: list[int] = []
    firsts: list[int] = []
    for k in np.flatnonzero(chars < _REPEATED_CHARS).tolist():
        first = seen.setdefault(texts[k], k)
        if first != k:
            repeats.append(k)
            firsts.append(first)
    if not repeats:
        return texts, None
    new = np.ones(len(texts), dtype=bool)
    new[repeats] = False
    place = np.cumsum(new) - 1
    place[repeats] = place[firsts]
    return [texts[k] for k in np.flatnonzero(new).tolist()], place


_REPEATED_CHARS = ChromeSettings().length_high  # the lines that recur as chrome are shorter


def _text_features(texts: list[str], hasher: MinHasher, ngram: int, min_words: int, key_cues: bool,
                   terms: bool) -> dict[str, np.ndarray]:
    """`ParagraphFeatures`' fields that depend on a paragraph's text alone, one entry per text."""
    batch: Sequence[str] | Packed
    if kernels.AVAILABLE:  # normalised into one buffer that every kernel below reads
        batch = packed = pack_paragraphs(texts)
        key_hi, key_lo = _exact_keys(packed)
    else:
        batch = [normalize(text) for text in texts]
        exact = [exact_key(norm) for norm in batch]
        key_hi = np.fromiter((hi for hi, _ in exact), dtype=np.uint64, count=len(exact))
        key_lo = np.fromiter((lo for _, lo in exact), dtype=np.uint64, count=len(exact))
    signed = sign_paragraphs(batch, ngram, hasher, min_words, number_words=terms)
    keys = line_keys_with_cues(batch if key_cues else [])
    # Paragraphs come stripped from segmentation, as `text_flags` wants them.
    flags = text_flags_of(texts) if key_cues else []
    if terms:
        numbered = signed.distinct_words
        term_ids, term_vocabulary, term_offsets = (
            term_ids_of_batch(batch) if numbered is None else term_ids_of_words(numbered))
    else:
        term_ids, term_vocabulary = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint64)
        term_offsets = np.zeros(1, dtype=np.int64)
    return {
        "words": signed.words, "key_hi": key_hi, "key_lo": key_lo,
        "sig_row": np.where(signed.signed, np.cumsum(signed.signed) - 1, -1).astype(np.int64),
        "signatures": signed.signatures, "shingle_hashes": signed.shingle_hashes,
        "shingle_offsets": signed.shingle_offsets, "key_chars": keys.chars, "key_words": keys.words,
        "key_stops": keys.stops, "key_hashes": keys.hashes, "line_flags": np.asarray(flags, dtype=np.uint8),
        "term_ids": term_ids, "term_vocabulary": term_vocabulary, "term_offsets": term_offsets,
    }


def _for_each_paragraph(per_text: dict[str, np.ndarray], of: np.ndarray) -> dict[str, np.ndarray]:
    """`_text_features` of distinct texts as the features of the paragraphs holding them (`of`)."""
    out = dict(per_text)
    for name in ("words", "key_hi", "key_lo", "key_chars", "key_words", "key_stops", "key_hashes", "line_flags"):
        if len(per_text[name]):  # (the chrome cues are empty when not asked for)
            out[name] = per_text[name][of]
    rows = per_text["sig_row"][of]  # each paragraph's text's signature row, -1 when not signed
    signed = rows >= 0
    rows = rows[signed]
    out["sig_row"] = np.where(signed, np.cumsum(signed) - 1, -1).astype(np.int64)
    out["signatures"] = per_text["signatures"][rows]
    out["shingle_hashes"], out["shingle_offsets"] = kernels_rows.gather_rows(per_text["shingle_hashes"],
                                                                             per_text["shingle_offsets"], rows)
    if len(per_text["term_offsets"]) > 1:
        out["term_ids"], out["term_offsets"] = kernels_rows.gather_rows(per_text["term_ids"],
                                                                        per_text["term_offsets"], of)
    return out


def concat(parts: Sequence[ParagraphFeatures], doc_offsets: Sequence[int]) -> ParagraphFeatures:
    """Join batch features into one table; `doc_offsets[b]` is batch b's first global document index."""
    sig_base = np.cumsum([0] + [len(p.signatures) for p in parts])
    num_perm = parts[0].signatures.shape[1] if parts else 0
    return ParagraphFeatures(
        doc=np.concatenate([p.doc + doc_offsets[b] for b, p in enumerate(parts)] or [np.zeros(0, np.int64)]),
        index=_cat([p.index for p in parts], np.int64),
        line=_cat([p.line for p in parts], np.int64),
        end=_cat([p.end for p in parts], np.int64),
        start=_cat([p.start for p in parts], np.int64),
        stop=_cat([p.stop for p in parts], np.int64),
        words=_cat([p.words for p in parts], np.int64),
        chars=_cat([p.chars for p in parts], np.int64),
        key_hi=_cat([p.key_hi for p in parts], np.uint64),
        key_lo=_cat([p.key_lo for p in parts], np.uint64),
        sig_row=np.concatenate(
            [np.where(p.sig_row >= 0, p.sig_row + sig_base[b], -1) for b, p in enumerate(parts)]
            or [np.zeros(0, np.int64)]
        ),
        signatures=np.concatenate([p.signatures for p in parts]) if parts else np.zeros((0, num_perm), np.uint32),
        shingle_hashes=_cat([p.shingle_hashes for p in parts], np.uint32),
        shingle_offsets=_offsets([p.shingle_offsets for p in parts]),
        key_chars=_cat([p.key_chars for p in parts], np.int32),
        key_words=_cat([p.key_words for p in parts], np.int32),
        key_stops=_cat([p.key_stops for p in parts], np.int32),
        key_hashes=_cat([p.key_hashes for p in parts], np.uint64),
        line_flags=_cat([p.line_flags for p in parts], np.uint8),
        **_joined_terms(parts),
    )


def _joined_terms(parts: Sequence[ParagraphFeatures]) -> dict[str, np.ndarray]:
    """The batches' term ids renumbered into their merged vocabulary (still the sorted distinct
    hashes, so ids are the same whatever the batches)."""
    vocabulary = merged_vocabulary([p.term_vocabulary for p in parts])
    ids = [renumbered(p.term_ids, p.term_vocabulary, vocabulary) for p in parts]
    return {"term_ids": _cat(ids, np.int32), "term_vocabulary": vocabulary,
            "term_offsets": _offsets([p.term_offsets for p in parts])}


def merged_vocabulary(vocabularies: Sequence[np.ndarray]) -> np.ndarray:
    """The batches' term vocabularies (each its sorted distinct hashes) as one."""
    return unique_sorted(_cat(list(vocabularies), np.uint64))


def renumbered(ids: np.ndarray, own: np.ndarray, merged: np.ndarray) -> np.ndarray:
    """A batch's term ids, numbered by its `own` vocabulary, numbered by the `merged` one."""
    return np.searchsorted(merged, own).astype(np.int32)[ids]


def _offsets(parts: list[np.ndarray]) -> np.ndarray:
    """Offsets into concatenated flat arrays, from each part's own offsets (each starting at 0)."""
    out = [np.zeros(1, dtype=np.int64)]
    base = 0
    for offsets in parts:
        out.append(offsets[1:] + base)
        base += int(offsets[-1])
    return np.concatenate(out)


def _cat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def without_shingles(feats: ParagraphFeatures) -> ParagraphFeatures:
    """The features without the paragraphs' signatures and shingle sets, which nothing reads once
    the documents' rows and content shingles are made: the story stage, which needs the room,
    comes after."""
    return replace(feats, signatures=feats.signatures[:0].copy(), shingle_hashes=np.zeros(0, dtype=np.uint32),
                   shingle_offsets=np.zeros(1, dtype=np.int64))
