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
    assert sorted(queuing) == ["attempts.py", "conversations.py", "inbound.py", "messages.py"]
