"""The client-side ordering rule: apply in seq order, hold what is ahead of a gap, drop duplicates."""

from realtime.ordering import SeqOrder


def seqs(frames) -> list[int]:
    return [f["seq"] for f in frames]


def test_in_order_frames_pass_through():
    order = SeqOrder(last=4)
    assert seqs(order.push({"seq": 5})) == [5] and seqs(order.push({"seq": 6})) == [6]
    assert order.gap is None


def test_a_frame_ahead_of_a_missing_one_waits_and_names_the_gap():
    order = SeqOrder(last=4)
    assert order.push({"seq": 7}) == []
    assert order.gap == (4, 6)
    assert seqs(order.push({"seq": 5})) == [5] and order.gap == (5, 6)
    assert seqs(order.push({"seq": 6})) == [6, 7] and order.gap is None


def test_duplicates_and_old_frames_are_dropped():
    order = SeqOrder(last=4)
    order.push({"seq": 5})
    assert order.push({"seq": 5}) == [] and order.push({"seq": 3}) == []
    order.push({"seq": 8})
    assert order.push({"seq": 8}) == []


def test_a_resync_forgets_what_was_held():
    order = SeqOrder(last=1)
    order.push({"seq": 9})
    order.reset(20)
    assert order.last == 20 and order.gap is None and seqs(order.push({"seq": 21})) == [21]
