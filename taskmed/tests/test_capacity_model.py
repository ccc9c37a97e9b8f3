"""The capacity model (bench/capacity.py) and its page: the sizes the plan is made for, the traffic each
process hears with and without clinic affinity, and docs/capacity.md showing what the stored costs give."""

import json
from pathlib import Path

from bench import capacity

ROOT = Path(__file__).resolve().parents[2]
STORED = json.loads((ROOT / "bench" / "capacity.json").read_text())


def test_the_clinic_mix_reaches_the_sizes_the_plan_is_for():
    mean, _square = capacity.zipf_sizes()
    biggest = capacity.plan(STORED["units"])[-1]
    assert 1.9 < mean < 2.0
    assert biggest["clinics"] == 50_000
    assert 95_000 <= biggest["sockets"] <= 100_000 and 950 <= biggest["peak_messages_per_s"] <= 1_000
    assert biggest["server_processes"] >= biggest["sockets"] / capacity.SOCKETS_PER_PROCESS


def test_affinity_cuts_what_each_process_hears_by_the_number_of_processes():
    units = {**STORED["units"], "webhook_cpu_ms": 0, "frame_cpu_us": 0, "idle_cpu_us_per_conn_s": 0}
    units["bus_heard_cpu_us"], units["published_per_webhook"] = 1e6, 1.0  # one core a message heard a second
    spread = capacity.predict(units, procs=4, clients=400, clinics=20, rate=40)
    pinned = capacity.predict(units, procs=4, clients=400, clinics=20, rate=40, affinity=True)
    assert spread == [30.0] * 4  # each hears the three quarters of the messages the others took
    assert pinned == [7.5] * 4  # only the clinic's own process hears them
    assert capacity.predict(units, procs=1, clients=400, clinics=20, rate=40) == [0.0]


def test_the_page_shows_the_plan_the_stored_costs_give():
    page = (ROOT / "docs" / "capacity.md").read_text()
    for row in capacity.plan(STORED["units"]):
        cells = f"| {row['clinics']:,} | {row['sockets']:,} | {row['peak_messages_per_s']:,} |"
        assert cells in page and f"| {row['server_processes']} | {row['hosts_2_cores']} |" in page
    for row in STORED["check"]:
        assert f"| {row['predicted_cpu_pct']} % | {row['measured_cpu_pct']} % (" in page
        assert abs(row["error_pct"]) <= 20, row  # what the page claims of every run


def test_axis_ticks_are_round_and_cover_the_tallest_bar():
    assert capacity.nice_ticks(19.14) == [0, 5, 10, 15, 20]
    assert capacity.nice_ticks(410) == [0, 200, 400, 600]
    ticks = capacity.nice_ticks(8.85)
    assert ticks[-1] >= 8.85 and ticks[1] == 2.5
