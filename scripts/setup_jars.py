"""Spark's extra jars, fetched from Maven Central into .cache/jars and checked, once.

``spark-jars/jars.lock`` names every jar Spark needs beyond pyspark's own (Delta and the Hadoop
cloud connectors of ``spark-jars/pom.xml``, with their runtime dependencies, minus every jar
pyspark already ships: another Jackson or Parquet on the classpath breaks Spark), each with its
size and SHA-256. Fetching needs only Python: each jar is downloaded over HTTPS from Maven
Central and kept only when its SHA-256 is the committed one. Idempotent: jars already present
with the right checksum are kept, and a stamp of the lock skips the hashing when nothing changed.

``--lock`` (for a maintainer changing pom.xml or pyspark; needs Maven) resolves the pom and
writes the lock again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "spark-jars" / "pom.xml"
LOCK = ROOT / "spark-jars" / "jars.lock"
OUT = ROOT / ".cache" / "jars"
CENTRAL = "https://repo1.maven.org/maven2"
REPOSITORY_ENV = "LAKEHOUSE_MAVEN_REPOSITORY"  # a mirror of Maven Central, e.g. behind a proxy
STAMP = ".verified"
CHUNK = 1 << 20
ATTEMPTS = 3
_VERSIONED = re.compile(r"^(?P<name>.+?)-\d[\w.\-]*\.jar$")


class SetupError(Exception):
    """What stopped the setup, in one line."""


@dataclass(frozen=True)
class Jar:
    """One locked jar: its Maven coordinates, size and SHA-256."""

    group: str
    artifact: str
    version: str
    classifier: str
    size: int
    sha256: str

    @property
    def file_name(self) -> str:
        """The jar's file name in the repository and in the cache."""
        suffix = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{suffix}.jar"

    def url(self, repository: str) -> str:
        """Where the repository (Maven's layout) serves it."""
        path = "/".join([*self.group.split("."), self.artifact, self.version, self.file_name])
        return f"{repository.rstrip('/')}/{path}"

    def line(self) -> str:
        """The jar as a line of the lock."""
        coordinate = ":".join(
            [
                self.group,
                self.artifact,
                self.version,
                *([self.classifier] if self.classifier else []),
            ]
        )
        return f"{coordinate} {self.size} {self.sha256}"


def read_lock(path: Path) -> list[Jar]:
    """The jars of a lock file: ``group:artifact:version[:classifier] size sha256`` lines."""
    jars = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            coordinate, size, sha256 = line.split()
            group, artifact, version, *classifier = coordinate.split(":")
            if len(classifier) > 1 or not re.fullmatch(r"[0-9a-f]{64}", sha256):
                raise ValueError
            jars.append(Jar(group, artifact, version, "".join(classifier), int(size), sha256))
        except ValueError:
            raise SetupError(
                f"{path}:{number}: not 'group:artifact:version[:classifier] size sha256': {raw!r}"
            ) from None
    return jars


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(jar: Jar, repository: str, out: Path) -> None:
    """Fetch one jar into ``out``, in place only when its size and SHA-256 are the locked ones."""
    url = jar.url(repository)
    part = out / f".{jar.file_name}.part"
    for attempt in range(1, ATTEMPTS + 1):
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as response, part.open("wb") as f:
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    f.write(chunk)
            break
        except urllib.error.HTTPError as exc:  # a wrong coordinate or repository: no retry
            part.unlink(missing_ok=True)
            raise SetupError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (OSError, urllib.error.URLError) as exc:
            part.unlink(missing_ok=True)
            if attempt == ATTEMPTS:
                reason = getattr(exc, "reason", exc)
                raise SetupError(f"{url}: {reason} ({ATTEMPTS} attempts)") from None
    if digest.hexdigest() != jar.sha256 or part.stat().st_size != jar.size:
        got = f"{part.stat().st_size} bytes, sha256 {digest.hexdigest()}"
        part.unlink()
        raise SetupError(
            f"{url}: checksum mismatch, got {got}, spark-jars/jars.lock says {jar.size} bytes, "
            f"sha256 {jar.sha256}; nothing was kept"
        )
    part.replace(out / jar.file_name)


def fetch(jars: list[Jar], out: Path, repository: str, lock_digest: str) -> list[str]:
    """Make ``out`` hold exactly the locked jars; the names of those downloaded."""
    stamp = out / STAMP
    present = all(
        (out / j.file_name).is_file() and (out / j.file_name).stat().st_size == j.size for j in jars
    )
    if present and stamp.is_file() and stamp.read_text().strip() == lock_digest:
        return []
    out.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    fetched = []
    for jar in jars:
        path = out / jar.file_name
        if path.is_file() and path.stat().st_size == jar.size and sha256_of(path) == jar.sha256:
            continue
        size = f"{jar.size / 2**20:.1f} MiB" if jar.size >= 2**20 else f"{jar.size // 1024} KiB"
        print(f"fetching {jar.file_name} ({size}) from {repository}", flush=True)
        download(jar, repository, out)
        fetched.append(jar.file_name)
    wanted = {j.file_name for j in jars}
    for old in out.glob("*.jar"):  # another version of a locked jar, or one no longer needed
        if old.name not in wanted:
            old.unlink()
    stamp.write_text(lock_digest + "\n")
    return fetched


def check_java() -> str:
    """``java 17 ok``, or the one-line reason Spark cannot start."""
    sys.path.insert(0, str(ROOT))
    from pipelines.spark.session import SparkSetupError
    from pipelines.spark.session import check_java as major

    try:
        return f"java {major()} ok"
    except SparkSetupError as exc:
        raise SetupError(str(exc)) from None


def artifact(jar: str) -> str:
    """Artifact name of a jar file name, without its version."""
    match = _VERSIONED.match(jar)
    return match.group("name") if match else jar


def lock(pom: Path, path: Path) -> list[Jar]:
    """Resolve ``pom`` with Maven and write ``path``: every runtime jar pyspark does not ship."""
    import pyspark

    if shutil.which("mvn") is None:
        raise SetupError("--lock resolves spark-jars/pom.xml with Maven: install mvn")
    shipped = {artifact(j.name) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    with tempfile.TemporaryDirectory() as stage:
        cmd = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies"]
        cmd += ["-DincludeScope=runtime", "-Dmdep.useRepositoryLayout=true"]
        if subprocess.run([*cmd, f"-DoutputDirectory={stage}"], check=False).returncode != 0:
            raise SetupError(f"mvn could not resolve {pom} from Maven Central")
        jars = []
        for found in sorted(Path(stage).rglob("*.jar")):
            *group, name, version, _ = found.relative_to(stage).parts
            if name in shipped:
                continue
            base = f"{name}-{version}"
            classifier = found.stem[len(base) + 1 :] if found.stem != base else ""
            size = found.stat().st_size
            jars.append(Jar(".".join(group), name, version, classifier, size, sha256_of(found)))
    header = [
        "# Spark's jars beyond pyspark's own: spark-jars/pom.xml resolved with their runtime",
        f"# dependencies, minus the jars pyspark {pyspark.__version__} ships. Written by",
        "# `python scripts/setup_jars.py --lock` (needs Maven); `make setup` fetches each jar from",
        "# Maven Central and keeps it only with this size and SHA-256.",
        "# group:artifact:version[:classifier] size sha256",
    ]
    path.write_text("\n".join([*header, *(j.line() for j in jars)]) + "\n")
    return jars


def main(argv: list[str] | None = None) -> int:
    """Check Java, then fetch and verify the locked jars (or, with ``--lock``, write the lock)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", action="store_true", help="resolve pom.xml with mvn, write it")
    parser.add_argument("--lock-file", type=Path, default=LOCK, help="default spark-jars/jars.lock")
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("LAKEHOUSE_JARS") or OUT), help="cache"
    )
    parser.add_argument(
        "--repository",
        default=os.environ.get(REPOSITORY_ENV) or CENTRAL,
        help=f"Maven repository URL (default: {REPOSITORY_ENV}, else Maven Central)",
    )
    parser.add_argument("--no-java-check", action="store_true", help="skip the Java check")
    args = parser.parse_args(argv)
    try:
        if args.lock:
            jars = lock(POM, args.lock_file)
            print(f"{args.lock_file}: {len(jars)} jars")
            return 0
        if not args.no_java_check:
            print(check_java())
        jars = read_lock(args.lock_file)
        digest = hashlib.sha256(args.lock_file.read_bytes()).hexdigest()
        fetched = fetch(jars, args.out, args.repository, digest)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    what = f"{len(fetched)} fetched and verified" if fetched else "up to date"
    print(f"spark jars {what} in {args.out} ({len(jars)} jars)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
