"""Resolve Spark's extra jars from Maven Central into .cache/jars, once.

Copies Delta and the Hadoop cloud connectors (spark-jars/pom.xml) with their runtime
dependencies, then drops every jar pyspark already ships (another version of Jackson or
Parquet on the classpath breaks Spark). Idempotent: a stamp holding the pom's hash skips the
work when nothing changed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyspark

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "spark-jars" / "pom.xml"
OUT = ROOT / ".cache" / "jars"
STAGE = ROOT / ".cache" / "jars-resolved"
_VERSIONED = re.compile(r"^(?P<name>.+?)-\d[\w.\-]*\.jar$")


def artifact(jar: str) -> str:
    """Artifact name of a jar file name, without its version."""
    match = _VERSIONED.match(jar)
    return match.group("name") if match else jar


def main() -> int:
    """Fetch and filter the jars; print what is on the classpath."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    stamp = OUT / f".stamp-{digest}"
    if stamp.exists():
        print(f"spark jars up to date in {OUT}")
        return 0
    shutil.rmtree(STAGE, ignore_errors=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={STAGE}",
    ]
    if subprocess.run(cmd, check=False).returncode != 0:
        print("error: mvn could not resolve spark-jars/pom.xml from Maven Central", file=sys.stderr)
        return 1
    shipped = {artifact(j.name) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    kept = []
    for jar in sorted(STAGE.glob("*.jar")):
        if artifact(jar.name) not in shipped:
            jar.rename(OUT / jar.name)
            kept.append(jar.name)
    shutil.rmtree(STAGE, ignore_errors=True)
    stamp.write_text("\n".join(kept) + "\n")
    print(f"spark jars in {OUT}: {', '.join(kept)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
