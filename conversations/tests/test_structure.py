"""The one-way rule for background work (DESIGN §1): tasks call actions; actions enqueue only through
`conversations.jobs`, never by importing the tasks that call them back."""

import ast
from pathlib import Path

ACTIONS = Path(__file__).resolve().parents[1] / "actions"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_no_action_imports_the_tasks():
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m.startswith("conversations.tasks"))
        for path in sorted(ACTIONS.glob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_actions_that_queue_work_do_it_through_jobs():
    queuing = [path.name for path in ACTIONS.glob("*.py") if "conversations.jobs" in imported_modules(path)]
    assert sorted(queuing) == [
        "attempts.py",
        "away.py",
        "conversations.py",
        "inbound.py",
        "inbound_fast.py",
        "messages.py",
        "notes.py",
        "push.py",
        "reactions.py",
    ]


def test_the_api_and_the_stream_reach_the_callers_clinic_through_access_not_the_pages():
    """DESIGN §1: the caller's clinic (a token's, a session's) is `conversations.access`'s; the API sits
    beside the pages and never reaches up into them."""
    api = Path(__file__).resolve().parents[1] / "api"
    offenders = {
        str(path.relative_to(api)): sorted(
            m for m in imported_modules(path) if m.split(".")[:2] == ["conversations", "web"]
        )
        for path in sorted(api.rglob("*.py"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}
