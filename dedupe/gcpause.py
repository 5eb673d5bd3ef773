"""Pause Python's cyclic garbage collector over a phase that builds millions of long-lived objects.

A scan holds objects per document and per reported paragraph (`Document`, `StrippedParagraph`,
`Member`; each batch's paragraph texts while it is signed), millions in a dump, none of them in
reference cycles: reference counting frees them.
The cyclic collector does not know that. Each time enough new objects have piled up it walks
every tracked object again: nine full collections during a 30k-document scan, 1.5-2 s of about
17 s. Under `--jobs` it costs more: a forked worker's collection writes to the header of every
object it walks, so the pages holding the inherited documents and paragraphs are copied into
the worker, one by one (about 3 s of 14 at 30k documents). Paused, a 30k scan found 407
unreachable objects afterwards (numba's compiler scratch), so nothing piles up.

Turned back on, the collector would walk every object made while it was off at the first
allocation after (they are all still in its youngest generation): 0.3 s at 100k documents, to
find nothing. So they are moved to its oldest generation first, without being walked
(`gc.freeze` then `gc.unfreeze`, two list splices), where only a full collection visits them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off inside the block (and in processes forked inside it), as it was after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:  # (a caller's own frozen objects stay frozen: left alone then)
                gc.freeze()
                gc.unfreeze()
            gc.enable()
