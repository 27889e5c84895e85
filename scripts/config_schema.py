"""Write lakehouse.schema.json, the JSON Schema of lakehouse.yaml, from its typed model.

Editors with a YAML language server validate and complete lakehouse.yaml against it (the file
names it on its first line). tests/test_config.py fails when the committed schema is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipelines.lake.config import PROJECT_ROOT, json_schema

TARGET = PROJECT_ROOT / "lakehouse.schema.json"


def render() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Write the schema (``--check``: exit 1 when the committed one differs)."""
    text = render()
    if "--check" in sys.argv[1:]:
        return 0 if Path(TARGET).read_text() == text else 1
    Path(TARGET).write_text(text)
    sys.stdout.write(f"wrote {TARGET}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
