"""dedupe: find near-duplicate and syndicated content in scraped text dumps, strip site chrome.

The library API takes an iterable of `Document`s and returns clusters; the `dedupe` command is a
thin layer over it.

    >>> from dedupe import Document, scan
    >>> result = scan([Document("a", text_a), Document("b", text_b)])
    >>> result.document_clusters
"""

from .batch_report import BatchReport
from .batches import ArchiveAndEarlierBatches, Batch, IndexBatches, earlier_batches, scan_in_batches
from .chrome import ChromeSettings, ChromeStats, classify_page, learn_chrome
from .clean import check_removal_guard, cleaned_text, output_records, removed_records
from .errors import BadRecordError, DedupeError, NoInputError, RemovalRefused
from .minhash import MinHasher
from .model import BadRecord, Cluster, ClusterKind, ClusterLevel, Document, Member
from .near import document_signatures, find_near_duplicate_documents
from .pipeline import scan
from .readers import Reader, ReadOptions, read_documents
from .report import SCHEMA_VERSION, build_report
from .results import ChromeLine, DocumentOutcome, ScanResult, Stats
from .segment import Paragraph, split_paragraphs
from .settings import Settings
from .shingle import shingle, shingle_hash32
from .story import StorySettings, content_terms, story_pairs
from .stripped import StrippedParagraph

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "ArchiveAndEarlierBatches",
    "BadRecord",
    "BadRecordError",
    "Batch",
    "BatchReport",
    "ChromeLine",
    "ChromeSettings",
    "ChromeStats",
    "Cluster",
    "ClusterKind",
    "ClusterLevel",
    "DedupeError",
    "Document",
    "DocumentOutcome",
    "IndexBatches",
    "Member",
    "MinHasher",
    "NoInputError",
    "Paragraph",
    "ReadOptions",
    "Reader",
    "RemovalRefused",
    "ScanResult",
    "Settings",
    "Stats",
    "StorySettings",
    "StrippedParagraph",
    "build_report",
    "check_removal_guard",
    "classify_page",
    "cleaned_text",
    "content_terms",
    "document_signatures",
    "earlier_batches",
    "find_near_duplicate_documents",
    "learn_chrome",
    "output_records",
    "read_documents",
    "removed_records",
    "scan",
    "scan_in_batches",
    "shingle",
    "shingle_hash32",
    "split_paragraphs",
    "story_pairs",
]
