"""FairQueue on its own: turn order across tenants, the two caps, withdrawal, closing, batched takes."""

import threading

import pytest

from runtime.engine.fair_queue import FairQueue, NoRoom, QueueClosed


def fill(queue: FairQueue, tenant: str, count: int) -> list[str]:
    items = [f"{tenant}{index}" for index in range(1, count + 1)]
    for item in items:
        queue.put(tenant, item)
    return items


def drain(queue: FairQueue) -> list[str]:
    taken = []
    while len(queue):
        taken.extend(queue.take(timeout=0))
    return taken


def test_one_tenant_is_first_in_first_out():
    queue = FairQueue(capacity=8, tenant_capacity=8)
    assert drain(queue) == []
    assert fill(queue, "a", 5) and drain(queue) == ["a1", "a2", "a3", "a4", "a5"]


def test_tenants_are_served_in_turn():
    queue = FairQueue(capacity=16, tenant_capacity=8)
    fill(queue, "a", 4)
    fill(queue, "b", 2)
    fill(queue, "c", 1)
    assert drain(queue) == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]


def test_a_newcomer_is_served_before_the_flooding_tenant_s_next_item():
    queue = FairQueue(capacity=16, tenant_capacity=8)
    fill(queue, "a", 8)
    assert queue.take() == ["a1"]  # running now
    queue.put("b", "b1")
    assert queue.take() == ["b1"]
    assert drain(queue) == ["a2", "a3", "a4", "a5", "a6", "a7", "a8"]


def test_resubmitting_one_at_a_time_does_not_jump_a_backlog():
    # A client that always has exactly one request waiting gets every other slot, not all of them.
    queue = FairQueue(capacity=16, tenant_capacity=8)
    fill(queue, "a", 6)
    served = []
    for round_number in range(4):
        queue.put("b", f"b{round_number}")
        served.extend(queue.take())
        served.extend(queue.take())
    assert served == ["a1", "b0", "a2", "b1", "a3", "b2", "a4", "b3"]


def test_a_tenant_fills_only_its_share():
    queue = FairQueue(capacity=16, tenant_capacity=8)
    fill(queue, "a", 8)
    with pytest.raises(NoRoom) as refused:
        queue.put("a", "a9")
    assert refused.value.tenant_share_full
    assert refused.value.position == 9  # behind its own eight
    queue.put("b", "b1")  # the other tenant still gets in
    assert len(queue) == 9 and queue.depth_of("a") == 8 and queue.depth_of("b") == 1


def test_the_refused_position_counts_the_other_tenants_turns():
    queue = FairQueue(capacity=16, tenant_capacity=3)
    fill(queue, "a", 3)
    fill(queue, "b", 3)
    with pytest.raises(NoRoom) as refused:
        queue.put("a", "a4")
    # a4 would run after a1 b1 a2 b2 a3 b3: six jobs ahead of it.
    assert refused.value.position == 7


def test_the_whole_queue_has_a_cap_too():
    queue = FairQueue(capacity=4, tenant_capacity=2)
    fill(queue, "a", 2)
    fill(queue, "b", 2)
    with pytest.raises(NoRoom) as refused:
        queue.put("c", "c1")
    assert not refused.value.tenant_share_full
    assert refused.value.position == 3  # it would have had its turn right after a1 and b1
    assert drain(queue) == ["a1", "b1", "a2", "b2"]
    queue.put("c", "c1")


def test_the_tenant_share_never_exceeds_the_whole():
    queue = FairQueue(capacity=2, tenant_capacity=8)
    fill(queue, "a", 2)
    with pytest.raises(NoRoom):
        queue.put("a", "a3")


def test_a_withdrawn_item_is_never_taken_and_frees_its_place():
    queue = FairQueue(capacity=16, tenant_capacity=3)
    items = fill(queue, "a", 3)
    assert queue.remove(items[1]) is True
    assert queue.remove(items[1]) is False
    assert queue.remove("never queued") is False
    queue.put("a", "a4")  # the place is free again
    assert drain(queue) == ["a1", "a3", "a4"]
    assert queue.remove("a1") is False  # taken already


def test_withdrawing_a_tenant_s_last_item_removes_it_from_the_rotation():
    queue = FairQueue(capacity=16, tenant_capacity=8)
    fill(queue, "a", 2)
    queue.put("b", "b1")
    queue.remove("b1")
    assert drain(queue) == ["a1", "a2"] and queue.depth_of("b") == 0


def test_take_hands_out_a_fair_batch():
    queue = FairQueue(capacity=16, tenant_capacity=8)
    fill(queue, "a", 3)
    fill(queue, "b", 1)
    fill(queue, "c", 2)
    assert queue.take(max_items=4) == ["a1", "b1", "c1", "a2"]
    assert queue.take(max_items=4) == ["c2", "a3"]  # what is there; never waits to fill the batch
    assert queue.take(max_items=4, timeout=0.01) == []


def test_take_waits_for_an_item():
    queue = FairQueue(capacity=4, tenant_capacity=4)
    taken: list = []
    consumer = threading.Thread(target=lambda: taken.extend(queue.take()))
    consumer.start()
    queue.put("a", "a1")
    consumer.join(timeout=10)
    assert taken == ["a1"]


def test_close_wakes_the_consumer_and_hands_back_what_waited():
    queue = FairQueue(capacity=8, tenant_capacity=4)
    fill(queue, "a", 2)
    fill(queue, "b", 1)
    assert queue.close() == ["a1", "b1", "a2"]
    assert queue.closed and len(queue) == 0
    assert queue.take() == []
    with pytest.raises(QueueClosed):
        queue.put("a", "late")

    waiting = FairQueue(capacity=1, tenant_capacity=1)
    taken: list = [None]
    consumer = threading.Thread(target=lambda: taken.__setitem__(0, waiting.take()))
    consumer.start()
    waiting.close()
    consumer.join(timeout=10)
    assert taken == [[]]


def test_forgotten_turns_keep_the_bookkeeping_small():
    queue = FairQueue(capacity=4, tenant_capacity=4)
    for index in range(1000):
        queue.put(f"tenant-{index}", index)
        queue.put("steady", f"s{index}")
        drain(queue)
    assert len(queue._last_turn) <= 2


@pytest.mark.parametrize(("capacity", "tenant_capacity"), [(0, 1), (1, 0)])
def test_capacities_must_be_positive(capacity, tenant_capacity):
    with pytest.raises(ValueError):
        FairQueue(capacity, tenant_capacity)
