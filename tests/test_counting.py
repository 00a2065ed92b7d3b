"""The shared counters stay exact when many threads hammer them."""

import threading

from mathy_a3c.counting import EpisodeCounter, StepCounter


def _run(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_step_counter_is_exact_under_many_threads():
    counter = StepCounter()
    _run(
        [
            threading.Thread(target=lambda: [counter.add(1) for _ in range(5000)])
            for _ in range(32)
        ]
    )
    assert counter.value == 32 * 5000


def test_episode_counter_hands_out_each_number_once_and_stops_at_the_limit():
    counter = EpisodeCounter(limit=10_007)
    claimed: list[list[int]] = [[] for _ in range(32)]

    def work(bucket):
        while (episode := counter.claim()) is not None:
            bucket.append(episode)
            counter.finish()

    _run([threading.Thread(target=work, args=(b,)) for b in claimed])
    everything = sorted(e for bucket in claimed for e in bucket)
    assert everything == list(range(10_007))
    assert counter.claimed == counter.finished == 10_007
    assert counter.claim() is None


def test_a_released_episode_is_handed_out_again_before_new_ones():
    counter = EpisodeCounter(limit=4)
    assert [counter.claim() for _ in range(3)] == [0, 1, 2]
    counter.release(1)  # its worker was lost
    assert counter.claimed == 2
    assert not counter.exhausted
    assert [counter.claim(), counter.claim()] == [1, 3]
    assert counter.exhausted
    assert counter.claim() is None
    counter.release(3)
    assert not counter.exhausted
    assert not counter.closed
    counter.close()  # closed: not even a released number goes out again
    assert counter.closed
    assert counter.exhausted
    assert counter.claim() is None
