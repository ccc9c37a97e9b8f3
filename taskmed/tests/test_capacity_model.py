"""The capacity model (bench/capacity.py) and its page: the sizes the plan is made for, the traffic each
process hears with and without clinic affinity, and docs/capacity.md showing what the stored costs give."""

import json
from pathlib import Path

from bench import capacity

ROOT = Path(__file__).resolve().parents[2]
STORED = json.loads((ROOT / "bench" / "capacity.json").read_text())


def test_the_clinic_mix_reaches_the_sizes_the_plan_is_for():
    mean, square = capacity.zipf_sizes()
    biggest = capacity.plan(STORED["units"])[-1]
    assert 1.9 < mean < 2.0 and 18 < square < 19  # most clinics one screen, a few dozens
    assert biggest["clinics"] == 50_000
    assert 95_000 <= biggest["sockets"] <= 100_000 and 950 <= biggest["peak_messages_per_s"] <= 1_000


def test_a_plan_row_adds_up_from_the_unit_costs():
    units = {
        "webhook_cpu_ms": 2.0,
        "webhook_postgres_cpu_ms": 1.0,
        "webhook_redis_cpu_ms": 0.2,
        "frame_cpu_us": 20.0,
        "row_fetch_cpu_ms": 10.0,
        "row_fetch_postgres_cpu_ms": 2.0,
        "idle_cpu_us_per_conn_s": 2.0,
        "bus_heard_cpu_us": 400.0,
        "frames_per_webhook_per_socket": 1.0,
        "published_per_webhook": 1.0,
        "kib_per_conn": 20.0,
        "process_base_mib": 100.0,
    }
    mean, square = capacity.zipf_sizes()
    row = capacity.plan(units)[0]  # 1,000 clinics
    rate, frames = 0.01 * 1000 * mean, 0.01 * 1000 * square
    fetches = frames * 0.2 + rate  # the rows the screens ask for (ROW_ASKED_SHARE), and the open conversation's message
    cores = rate * 0.002 + frames * 20e-6 + 1000 * mean * 2e-6 + fetches * 0.010
    processes = -(-cores // 0.6)
    cores += rate * (processes - 1) / processes * 400e-6  # heard over Redis, with affinity
    assert row["peak_messages_per_s"] == round(rate, 1) and row["screen_fetches_per_s"] == round(fetches)
    assert row["server_cores"] == round(cores / 0.6, 2) and row["server_processes"] == processes
    assert row["postgres_cores"] == round((rate * 0.001 + fetches * 0.002) / 0.6, 2)
    assert row["server_memory_gib"] == round((1000 * mean * 20 + processes * 100 * 1024) / 2**20, 2)


def test_affinity_cuts_what_each_process_hears_by_the_number_of_processes():
    units = {**STORED["units"], "webhook_cpu_ms": 0, "frame_cpu_us": 0, "idle_cpu_us_per_conn_s": 0}
    units["bus_heard_cpu_us"], units["published_per_webhook"] = 1e6, 1.0  # one core a message heard a second
    spread = capacity.predict(units, procs=4, clients=400, clinics=20, rate=40)
    pinned = capacity.predict(units, procs=4, clients=400, clinics=20, rate=40, affinity=True)
    assert spread == [30.0] * 4  # each hears the three quarters of the messages the others took
    assert pinned == [7.5] * 4  # only the clinic's own process hears them
    assert capacity.predict(units, procs=1, clients=400, clinics=20, rate=40) == [0.0]


def test_the_page_shows_the_plan_and_the_check_the_stored_costs_give():
    page = (ROOT / "docs" / "capacity.md").read_text()
    for row in capacity.plan(STORED["units"]):
        cells = (
            f"| {row['clinics']:,} | {row['sockets']:,} | {row['peak_messages_per_s']:,} | {row['frames_per_s']:,} "
            f"| {row['screen_fetches_per_s']:,} | {row['server_cores']} | {row['server_processes']} "
            f"| {row['hosts_2_cores']} | {row['server_memory_gib']} GiB | {row['postgres_cores']} "
            f"| {row['redis_cores']} |"
        )
        assert cells in page
    for row in STORED["check"]:
        predicted = capacity.predict(
            STORED["units"],
            procs=row["procs"],
            clients=row["clients"],
            clinics=int(row["load"].split(", ")[1].split()[0]),
            rate=row["webhooks_per_s"],
            affinity=row["affinity"],
        )
        assert abs(100 * sum(predicted) - row["predicted_cpu_pct"]) < 0.2, row  # webhooks/s stored rounded
        assert f"| {row['predicted_cpu_pct']} % | {row['measured_cpu_pct']} % (" in page


def test_axis_ticks_are_round_and_cover_the_tallest_bar():
    assert capacity.nice_ticks(19.14) == [0, 5, 10, 15, 20]
    assert capacity.nice_ticks(410) == [0, 200, 400, 600]
    ticks = capacity.nice_ticks(8.85)
    assert ticks[-1] >= 8.85 and ticks[1] == 2.5
