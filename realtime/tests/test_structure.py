"""The one-way rule (DESIGN §1, STYLE): `conversations` uses `realtime` (publish, the log, the hub);
`realtime` never reaches up into the domain, its API or its pages. What it needs of the domain (who a
caller is) is handed down at start-up (`realtime.auth.configure`)."""

import ast
from pathlib import Path

REALTIME = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_realtime_does_not_import_the_domain():
    sources = [p for p in REALTIME.rglob("*.py") if "tests" not in p.relative_to(REALTIME).parts]
    assert len(sources) > 10, "the package's modules were found"
    upward = {
        str(path.relative_to(REALTIME)): sorted(m for m in imports_of(path) if m.split(".")[0] == "conversations")
        for path in sources
    }
    assert {name: found for name, found in upward.items() if found} == {}
