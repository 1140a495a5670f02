"""Long-lived generation threads: reused between replies, a new one only when all are busy."""

from __future__ import annotations

import threading

from arena.backends.transformers_backend import GenerationThreads


def test_sequential_jobs_reuse_one_thread() -> None:
    pool = GenerationThreads(prefix="test-seq")
    seen: list[int] = []
    for _ in range(5):
        done = threading.Event()

        def job(done: threading.Event = done) -> None:
            seen.append(threading.get_ident())
            done.set()

        pool.submit(job)
        assert done.wait(5)
        # The thread counts itself idle just after the job returns.
        for _ in range(500):
            if pool.idle == 1:
                break
            threading.Event().wait(0.002)
    assert len(set(seen)) == 1
    assert pool.idle == 1


def test_concurrent_jobs_get_their_own_threads_and_all_return_to_idle() -> None:
    pool = GenerationThreads(prefix="test-par")
    n = 4
    arrived = threading.Barrier(n + 1, timeout=5)  # every job must run at the same time
    release = threading.Event()
    idents: list[int] = []

    def job() -> None:
        idents.append(threading.get_ident())
        arrived.wait()
        release.wait(5)

    for _ in range(n):
        pool.submit(job)
    arrived.wait()  # would time out (BrokenBarrierError) if jobs queued behind each other
    release.set()
    for _ in range(500):
        if pool.idle == n:
            break
        threading.Event().wait(0.002)
    assert pool.idle == n
    assert len(set(idents)) == n
    names = {t.name for t in threading.enumerate() if t.name.startswith("test-par-")}
    assert len(names) == n

    # A second wave of the same size starts no new thread.
    arrived.reset()
    release.clear()
    idents.clear()
    for _ in range(n):
        pool.submit(job)
    arrived.wait()
    release.set()
    assert len({t.name for t in threading.enumerate() if t.name.startswith("test-par-")}) == n


def test_a_failing_job_keeps_its_thread() -> None:
    pool = GenerationThreads(prefix="test-fail")
    idents: list[int] = []
    done = threading.Event()

    def bad() -> None:
        idents.append(threading.get_ident())
        raise RuntimeError("boom")

    def good() -> None:
        idents.append(threading.get_ident())
        done.set()

    pool.submit(bad)
    for _ in range(500):
        if pool.idle == 1:
            break
        threading.Event().wait(0.002)
    pool.submit(good)
    assert done.wait(5)
    assert len(idents) == 2 and idents[0] == idents[1]
