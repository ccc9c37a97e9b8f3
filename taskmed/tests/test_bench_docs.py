"""`make bench` files each run under "Runs of `make bench`", whatever sections follow it in the page."""

from bench import run

RESULT = {
    "benchmark": "webhooks",
    "procs": 2,
    "achieved_rate": 500.0,
    "post_ms": {"p50": 2.0, "p99": 4.2},
    "lost": 0,
    "server_cpu_pct": [26.2, 27.0],
}


def test_a_run_lands_at_the_end_of_the_runs_section_not_of_the_page(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(
        "# Benchmarks\n\n## Runs of `make bench`\n\nEach run appends its figures here (newest last).\n\n"
        "### an earlier run\n\nearlier figures\n\n## Soak: 10 minutes of churn\n\nsoak figures\n"
    )

    run.append([RESULT], docs=page)

    text = page.read_text()
    runs, soak = text.index("## Runs of `make bench`"), text.index("## Soak")
    new = text.index("| webhooks | 2 processes, 500/s")
    assert runs < text.index("### an earlier run") < new < soak
    assert text.endswith("soak figures\n")


def test_a_page_without_the_section_gets_it_at_its_end(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n## Soak\n\nsoak figures\n")

    run.append([RESULT], docs=page)

    text = page.read_text()
    assert text.index("soak figures") < text.index("## Runs of `make bench`") < text.index("| webhooks |")


def test_each_run_says_how_busy_the_machine_and_the_load_generator_were():
    before = run.cpu_times()
    sum(range(2_000_000))  # some work, so that the machine was busy at all
    machine = run.machine_during(before)
    assert 0 < machine["busy_pct"] <= 100 and machine["cores"] >= 1
    cell = run.summary({**RESULT, "machine": machine, "loadgen_cpu_pct": 41.5})
    assert f"machine {machine['busy_pct']} % busy over {machine['cores']} cores, load generator 41.5 %" in cell


def test_a_capacity_run_names_the_load_of_each_check():
    units = {"frame_cpu_us": 30, "webhook_cpu_ms": 2.7, "webhook_postgres_cpu_ms": 1.2, "row_fetch_cpu_ms": 21}
    units |= {"idle_cpu_us_per_conn_s": 1.6, "kib_per_conn": 20.7}
    a, b = "2,000 sockets, 20 clinics, 20 webhooks/s", "3,000 sockets, 60 clinics, 40 webhooks/s"
    checks = [(a, 1, False, 4.2), (b, 2, False, -13.2), (b, 4, True, -17.1)]
    result = {
        "benchmark": "capacity",
        "units": units,
        "check": [{"load": load, "procs": p, "affinity": pinned, "error_pct": e} for load, p, pinned, e in checks],
        "plan": [{"clinics": 50_000, "server_processes": 374}],
    }
    figures = run._figures(result)
    assert "A 1: +4.2 %, B 2: -13.2 %, B′ 4: -17.1 %" in figures
    assert "50,000 clinics need 374 processes" in figures
