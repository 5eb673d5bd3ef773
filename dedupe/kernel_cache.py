"""The compiled kernels made ready before a command reads its input.

numba compiles each kernel the first time it is called and caches the machine code on disk (in the
package's `__pycache__`, or under NUMBA_CACHE_DIR); a later process loads it in about half a
second. A first run after installing compiles them all (about 35 s on 2 cores) and keeps the
compiler's memory for the rest of the run: `clean --in-batches 25000` over 100k documents peaked at
1.8 GB on a first run against 0.8 GB with the cache filled. So when the cache does not hold every
kernel yet, they are compiled in a forked child, which fills the cache and exits, and this process
then loads them. They are loaded by calling each (`kernels.warm_up`) and by scanning a few built-in
documents, which calls the kernels with the array types a real run gives them (read-only buffers,
32-bit indices), each of which numba compiles on its own.
"""

from __future__ import annotations

import os
from typing import Any

from . import kernels
from .forkpool import CAN_FORK
from .model import Document
from .pipeline import scan
from .settings import Settings

_SAMPLE_WORDS = (
    "harbour", "council", "budget", "minister", "tunnel", "ferry", "bridge", "railway", "station", "airport",
    "storm", "flood", "river", "valley", "orchard", "vineyard", "harvest", "festival", "museum", "gallery",
    "theatre", "concert", "stadium", "league", "season", "coach", "striker", "keeper", "referee", "verdict",
    "court", "judge", "witness")

_prepared = False


def prepare() -> None:
    """Load every kernel into this process (once per process); compile them in a child first
    when numba's cache does not hold them all."""
    global _prepared
    if _prepared or not kernels.AVAILABLE:
        return
    if CAN_FORK and not compiled_on_disk():
        _compile_in_child()
    _load()
    _prepared = True


def compiled_on_disk() -> bool:
    """Whether numba's cache holds machine code for every kernel, for their current source. Read
    from numba's cache index (its internals: when they are not as expected, or the cache cannot
    be written, this says True and the kernels are compiled in this process, as before)."""
    try:
        return all(dispatcher._cache._cache_file._load_index() for dispatcher in _dispatchers())
    except Exception:  # any surprise in numba's internals: compile here, as before
        return True


def _compile_in_child() -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (coverage does not follow it); it dies with a Ctrl-C too
        code = 1
        try:
            _load()
            code = 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)  # a child that failed leaves the compiling to this process


def _load() -> None:
    kernels.warm_up()
    scan(sample_documents(), Settings(jobs=1))


def sample_documents() -> list[Document]:
    """A few pages of two sites: a shared chrome line, a copy, long paragraphs for the story
    stage, and text that is not ASCII."""
    words = _SAMPLE_WORDS
    story = " ".join(words[k % len(words)] for k in range(0, 7 * len(words), 7))
    other = " ".join(words[k % len(words)] for k in range(0, 11 * len(words), 11))
    chrome = "Sign up for our newsletter"
    pages = [
        ("a/1", "a.example", [chrome, story, "The café reopened in Zürich — naïve visitors queued at dawn."]),
        ("a/2", "a.example", [chrome, other, story]),
        ("a/3", "a.example", [chrome, story, other]),
        ("b/1", "b.example", ["Home", story, other]),
        ("b/2", "b.example", ["Home", f"{other} {story}"]),
    ]
    return [Document(i, "\n\n".join(paragraphs), site=site) for i, site, paragraphs in pages]


def _dispatchers() -> list[Any]:
    from . import (
        chrome_compiled,
        kernels_lines,
        kernels_lsh,
        kernels_rows,
        kernels_segment,
        kernels_story,
        unicode_forms,
    )

    modules = (kernels, kernels_lines, kernels_lsh, kernels_rows, kernels_segment, kernels_story, chrome_compiled,
               unicode_forms)
    return [value for module in modules for value in vars(module).values()
            if hasattr(value, "py_func") and hasattr(value, "_cache") and value.py_func.__module__ == module.__name__]
