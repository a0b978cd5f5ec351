"""The one reader of the Docker engine's build stream: steps, cache hits, image ID, error
(chunks as the classic builder sends them; the lab tier builds real images through it)."""

from __future__ import annotations

import pytest

from stacksalt.buildstream import BuildStream

pytestmark = pytest.mark.fast

CHUNKS = [
    {"stream": "Step 1/3 : FROM stacksalt/base:bookworm\n"},
    {"stream": " ---> 0123456789ab\n"},
    {"stream": "Step 2/3 : RUN apt-get update\n"},
    {"stream": " ---> Using cache\n"},
    {"stream": " ---> 1123456789ab\n"},
    {"stream": "Step 3/3 : COPY files /etc/x\n"},
    {"stream": "copying\n"},
    {"stream": " ---> 2123456789ab\n"},
    {"aux": {"ID": "sha256:2123456789abcdef"}},
]


def test_steps_cache_hits_and_image_id():
    done = []
    log = BuildStream(lambda step, cached, took, is_from: done.append((step[:9], cached,
                                                                       is_from)))
    assert all(log.feed(c) is None for c in CHUNKS)
    assert done == [("Step 1/3 ", False, True), ("Step 2/3 ", True, False),
                    ("Step 3/3 ", False, False)]
    assert (log.steps, log.cache_hits, log.all_cached) == (2, 1, False)
    assert log.image_id == "sha256:2123456789abcdef"


def test_an_error_chunk_is_returned_with_the_tail_kept():
    log = BuildStream()
    for c in CHUNKS[:7]:
        log.feed(c)
    assert log.feed({"error": "The command '/bin/sh -c x' returned a non-zero code: 1\n"}) \
        == "The command '/bin/sh -c x' returned a non-zero code: 1"
    assert list(log.tail)[-1] == "copying"
