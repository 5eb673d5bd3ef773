"""Measure chrome stripping against human gold main text.

Reads the dev set of real pages (`devset.jsonl.gz`, fields id, site, url, text, gold) from the shared
eval folder, learns per-site recurrence with every page as its own group (pages do not repeat in the
dev set), strips the chrome of every page with default settings, writes the cleaned `{id, text}` JSONL
and scores it with the folder's own `chrome_score.py` (bag-of-words P/R/F1 macro over pages). It also
reports the two halves of a split by site: the defaults were tuned on half A only, half B shows the
figure on sites they were not tuned on. Optionally it runs the syndication check.

Usage:
  python benchmarks/chrome_eval.py [EVAL_DIR] [--out CLEANED.jsonl] [--synd SYND.jsonl]

EVAL_DIR defaults to ../shared/eval relative to the repository. `--synd` takes the output of
`python EVAL_DIR/syndication.py EVAL_DIR/devset.jsonl.gz SYND.jsonl` and reports, for each
syndicated copy, the share of its kept words that belong to its story (precision against the story's
gold) and the share of the story's gold words kept.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dedupe.chrome import ChromeSettings, classify_page, learn_chrome  # noqa: E402
from dedupe.segment import split_paragraphs  # noqa: E402

DEFAULT_EVAL_DIR = REPO.parent / "shared" / "eval"


def load_scorer(eval_dir: Path) -> ModuleType:
    """Import the eval folder's chrome_score.py without copying it into the repository."""
    spec = importlib.util.spec_from_file_location("chrome_score", eval_dir / "chrome_score.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {eval_dir / 'chrome_score.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strip_pages(docs: Sequence[dict[str, Any]], settings: ChromeSettings) -> dict[str, str]:
    """Cleaned text per page id: learn recurrence over all pages, then keep non-chrome paragraphs."""
    paragraphs = {str(d["id"]): [p.text for p in split_paragraphs(d["text"])] for d in docs}
    stats = learn_chrome((d["site"], str(d["id"]), paragraphs[str(d["id"])]) for d in docs)
    cleaned = {}
    for d in docs:
        paras = paragraphs[str(d["id"])]
        verdicts = classify_page(paras, d["site"], stats, settings)
        cleaned[str(d["id"])] = "\n".join(p for p, v in zip(paras, verdicts, strict=True) if not v.is_chrome)
    return cleaned


def site_half(site: str) -> str:
    """Deterministic split of sites into halves A and B."""
    return "A" if zlib.crc32(site.encode("utf-8")) % 2 == 0 else "B"


def syndication_check(path: Path, dump: Sequence[dict[str, Any]], scorer: ModuleType) -> tuple[float, float, int]:
    """Mean share of each copy's kept words that are its story's, and of the story's words kept."""
    docs = scorer.read_jsonl(str(path))
    gold = {str(d["id"]): d["gold"] for d in dump}
    cleaned = strip_pages(docs, ChromeSettings())
    copies = [d for d in docs if str(d["id"]).startswith("copy-")]
    precision = recall = 0.0
    for d in copies:
        p, r, _ = scorer.prf(cleaned[str(d["id"])], gold[str(d["story"])])
        precision += p
        recall += r
    n = max(1, len(copies))
    return precision / n, recall / n, len(copies)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_dir", nargs="?", type=Path, default=DEFAULT_EVAL_DIR)
    ap.add_argument("--out", type=Path, help="where to write the cleaned JSONL (default: a temp file)")
    ap.add_argument("--synd", type=Path, help="syndication benchmark JSONL to check (see usage)")
    args = ap.parse_args(argv)

    devset = args.eval_dir / "devset.jsonl.gz"
    if not devset.is_file() or not (args.eval_dir / "chrome_score.py").is_file():
        sys.exit(f"dev set not found: need {devset} and chrome_score.py there (pass EVAL_DIR)")
    scorer = load_scorer(args.eval_dir)
    dump = scorer.read_jsonl(str(devset))

    cleaned = strip_pages(dump, ChromeSettings())
    out = args.out or Path(tempfile.mkdtemp(prefix="chrome_eval_")) / "cleaned.jsonl"
    with open(out, "w", encoding="utf-8") as f:
        for d in dump:
            f.write(json.dumps({"id": d["id"], "text": cleaned[str(d["id"])]}) + "\n")
    written = {str(r["id"]): r["text"] for r in scorer.read_jsonl(str(out))}

    p, r, f1 = scorer.score(dump, written)
    print(f"all sites: precision {p:.3f} recall {r:.3f} F1 {f1:.3f} ({len(dump)} pages) -> {out}")
    # The defaults were tuned on half A; half B is held out. The linedf2 baseline (drop lines seen
    # on 2+ pages of a site) shows how hard each half is.
    baseline = scorer.baseline(dump, "linedf2")
    for half, role in (("A", "tuning"), ("B", "held out")):
        part = [d for d in dump if site_half(d["site"]) == half]
        sites = len({d["site"] for d in part})
        p, r, f1 = scorer.score(part, written)
        base = scorer.score(part, baseline)[2]
        print(
            f"site half {half} ({role}): precision {p:.3f} recall {r:.3f} F1 {f1:.3f} "
            f"(linedf2 baseline F1 {base:.3f}; {len(part)} pages, {sites} sites)"
        )

    if args.synd:
        if not args.synd.is_file():
            sys.exit(f"syndication file not found: {args.synd}")
        sp, sr, n = syndication_check(args.synd, dump, scorer)
        print(f"syndicated copies: {sp:.3f} of kept words are the story's; {sr:.3f} of story words kept ({n} copies)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
