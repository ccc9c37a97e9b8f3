"""With concurrent writers on PostgreSQL, seqs are gap-free per clinic and commit in seq order."""

import random
import threading
import time

import pytest
from django.db import connection, transaction

from conversations.actions.inbound import receive_inbound_message
from conversations.models import Clinic
from realtime.models import Event

WRITERS = 4
MESSAGES_PER_WRITER = 25


def run_threads(targets: list) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(target):
        try:
            target()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_gap_free_seqs_committed_in_order(clinic: Clinic, make_clinic):
    other = make_clinic("Outra")
    done = threading.Event()
    snapshots_with_gaps: list[list[int]] = []
    polls = 0

    def writer(w: int):
        def write():
            rng = random.Random(w)
            for n in range(MESSAGES_PER_WRITER):
                target = clinic if n % 5 else other
                with transaction.atomic():
                    receive_inbound_message(
                        clinic=target, phone=f"55119{w:04d}{n:04d}", content=f"{w}/{n}", external_id=f"w{w}-{n}"
                    )
                    # Hold the transaction open after taking the seq, so commits of writers interleave: if a
                    # later seq could commit first, the reader below would see the gap.
                    time.sleep(rng.uniform(0, 0.004))

        return write

    def reader():
        nonlocal polls
        while not done.is_set():
            seqs = sorted(Event.objects.filter(clinic=clinic).values_list("seq", flat=True))
            polls += 1
            if seqs != list(range(1, len(seqs) + 1)):
                snapshots_with_gaps.append(seqs)

    reader_thread = threading.Thread(target=lambda: (reader(), connection.close()))
    reader_thread.start()
    errors = run_threads([writer(w) for w in range(WRITERS)])
    done.set()
    reader_thread.join(timeout=30)

    assert not errors, errors
    assert polls > 10, "the reader must have watched the writers at work"
    assert not snapshots_with_gaps, (
        f"a reader saw a later seq committed before an earlier one: {snapshots_with_gaps[0]}"
    )
    for c in (clinic, other):
        seqs = list(Event.objects.filter(clinic=c).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))
        c.refresh_from_db()
        assert c.event_seq == len(seqs)
    # Each new patient's first message logs conversation:new and message:new.
    assert Event.objects.count() == WRITERS * MESSAGES_PER_WRITER * 2
