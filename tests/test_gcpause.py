"""The collector is off inside `collector_paused`, back on after, and does not then walk what was
made inside at the next allocation."""

from __future__ import annotations

import gc
import sys

import pytest

from dedupe.gcpause import collector_paused


def test_collector_is_off_inside_and_back_on_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: the outer block decides
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="three generations until Python 3.14")
def test_what_was_made_inside_goes_to_the_oldest_generation_unwalked() -> None:
    """Left in the youngest, the first collection after would walk them all and move them to the
    middle one."""
    with collector_paused():
        made = [[k] for k in range(50_000)]
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(item) in oldest for item in made)


def test_a_callers_frozen_objects_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_paused():
            _ = [[k] for k in range(1_000)]
        assert gc.get_freeze_count() == frozen > 0
    finally:
        gc.unfreeze()
