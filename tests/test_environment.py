"""Every environment variable the product reads is read in one module and listed in the docs."""

import re
from pathlib import Path

import pytest

from pipelines.lake.config.environment import RESOURCE_SECRETS, VARIABLES, env

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("pipelines", "lakehouse", "jobs", "assets", "resources", "data_quality", "scripts")
ALLOWED = {
    Path("pipelines/lake/config/environment.py"),
    # stdlib only on purpose: it fetches the jars with nothing but Python (make setup, the image)
    Path("scripts/setup_jars.py"),
}
# A read: .get(, getenv(, "in os.environ", os.environ[...] not assigned to, the whole mapping.
READ = re.compile(
    r"os\.environ\.get\(|getenv\(|\bin os\.environ\b|os\.environ\[[^\]]*\](?!\s*=[^=])"
    r"|dict\(os\.environ\)|\*\*os\.environ|os\.environ\.copy\("
)


def test_no_module_but_the_environment_one_reads_the_environment():
    """Writes (a default for a library, a block's temporary value) are allowed; reads are not."""
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for folder in PRODUCT
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.relative_to(ROOT) not in ALLOWED
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if READ.search(line)
    ]
    assert not found, "read the environment through pipelines.lake.config.environment.env:\n" + (
        "\n".join(found)
    )


def test_the_grep_sees_the_reads_it_forbids():
    """The pattern is not vacuous: each form of read matches, each form of write does not."""
    for read in ('os.environ.get("X")', 'os.getenv("X")', '"X" in os.environ', 'os.environ["X"]'):
        assert READ.search(read), read
    for write in ('os.environ["X"] = v', 'os.environ.setdefault("X", v)', "os.environ.pop(k)"):
        assert not READ.search(write), write


def test_every_registered_variable_and_secret_is_in_the_docs():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [n for n in [*VARIABLES, *RESOURCE_SECRETS] if f"`{n}`" not in doc]
    assert not missing, f"list them in docs/architecture.md (Environment variables): {missing}"


def test_an_unregistered_name_is_refused(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_SOMETHING_NEW", "1")
    with pytest.raises(KeyError, match="LAKEHOUSE_SOMETHING_NEW is not registered"):
        env("LAKEHOUSE_SOMETHING_NEW")
    monkeypatch.setenv("LAKEHOUSE_ENV", "emulated")
    assert env("LAKEHOUSE_ENV") == "emulated"
