"""`make run` needs Python 3.11 and Java only; the Spark jars are fetched and checked by Python.

The fetch is tested against a Maven-layout repository served on 127.0.0.1 (tests use no
network); the real run fetches from Maven Central the same way.
"""

import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import setup_jars  # noqa: E402

# What only the tests and run-emulated need; `make run`'s path must not call any of them.
TEST_ONLY_TOOLS = ("npm", "node", "mvn", "chromium", "apt-get", "sudo")


def stripped_path(tmp_path: Path) -> str:
    """A PATH of symlinks to what `make run` may use: a shell, make, Java, Python, coreutils."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "make", "java", "python3.11", "env", "mkdir", "cp", "touch"):
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run this test"
        (bin_dir / tool).symlink_to(found)
    for tool in TEST_ONLY_TOOLS:
        assert not (bin_dir / tool).exists()
    return str(bin_dir)


def run_make(args: list[str], path: str, **env: str) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make
    return subprocess.run(
        [make, "--no-print-directory", *args],
        cwd=ROOT,
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_make_run_would_call_no_npm_mvn_or_chromium(tmp_path):
    path = stripped_path(tmp_path)
    done = run_make(["-n", "-B", "run"], path)
    assert done.returncode == 0, done.stderr
    plan = done.stdout
    assert "pip install" in plan and "scripts/setup_jars.py" in plan and "lakehouse demo" in plan
    for tool in TEST_ONLY_TOOLS:
        assert not re.search(rf"(^|[\s/]){re.escape(tool)}(\s|$)", plan, re.M), (tool, plan)
    test_plan = run_make(["-n", "-B", "test"], path).stdout
    assert "npm ci" in test_plan and "apt-get install" in test_plan  # the tests still get them


def test_make_setup_succeeds_with_only_python_and_java_on_path(tmp_path):
    """The setup `make run` depends on, run for real without npm, mvn or chromium on PATH.

    The venv is the project's (its stamp taken as up to date: installing packages needs pip
    only); the jars are the project's cache, linked into a folder of this test so the check
    runs on every one of them and writes nothing outside tmp_path.
    """
    cache = setup_jars.OUT
    jars = tmp_path / "jars"
    jars.mkdir()
    for jar in setup_jars.read_lock(setup_jars.LOCK):
        assert (cache / jar.file_name).is_file(), f"run `make setup` first: {jar.file_name}"
        (jars / jar.file_name).symlink_to(cache / jar.file_name)
    home = tmp_path / "dagster"
    done = run_make(
        ["-o", ".venv/.installed", "setup"],
        stripped_path(tmp_path),
        LAKEHOUSE_JARS=str(jars),
        DAGSTER_HOME=str(home),
        LAKEHOUSE_MAVEN_REPOSITORY="http://127.0.0.1:9/unreachable",  # nothing to fetch
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^java (17|21) ok$", done.stdout, re.M), done.stdout
    assert f"spark jars up to date in {jars}" in done.stdout
    assert (home / "dagster.yaml").is_file() and (jars / setup_jars.STAMP).is_file()


class Repository:
    """A Maven-layout repository on 127.0.0.1 that counts its requests."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                seen.append(self.path)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def repository(tmp_path):
    """Two small jars in a Maven-layout repository, and the lock that names them."""
    root = tmp_path / "repo"
    lines = []
    for coordinate, content in (
        ("org.example:alpha:1.0", b"alpha jar bytes"),
        ("org.example.deep:beta:2.1:shaded", b"beta jar bytes, shaded"),
    ):
        group, artifact, version, *classifier = coordinate.split(":")
        digest = hashlib.sha256(content).hexdigest()
        jar = setup_jars.Jar(group, artifact, version, "".join(classifier), len(content), digest)
        path = Path(jar.url(str(root)))
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        lines.append(jar.line())
    lock = tmp_path / "jars.lock"
    lock.write_text("# a test lock\n" + "\n".join(lines) + "\n")
    served = Repository(root)
    yield served, lock, root
    served.close()


def fetch(lock: Path, out: Path, url: str) -> int:
    argv = ["--lock-file", str(lock), "--out", str(out), "--repository", url, "--no-java-check"]
    return setup_jars.main(argv)


def test_jars_are_fetched_checked_and_then_left_alone(repository, tmp_path, capsys):
    served, lock, _ = repository
    out = tmp_path / "jars"
    assert fetch(lock, out, served.url) == 0
    assert sorted(p.name for p in out.glob("*.jar")) == [
        "alpha-1.0.jar",
        "beta-2.1-shaded.jar",
    ]
    assert (out / "beta-2.1-shaded.jar").read_bytes() == b"beta jar bytes, shaded"
    assert "2 fetched and verified" in capsys.readouterr().out
    fetched = len(served.requests)
    assert fetched == 2
    assert fetch(lock, out, served.url) == 0  # up to date: no request
    assert "up to date" in capsys.readouterr().out and len(served.requests) == fetched
    (out / "alpha-1.0.jar").write_bytes(b"alpha jar bytez")  # same size, other bytes
    (out / "old-0.9.jar").write_bytes(b"a jar the lock no longer names")
    (out / setup_jars.STAMP).unlink()
    assert fetch(lock, out, served.url) == 0
    assert (out / "alpha-1.0.jar").read_bytes() == b"alpha jar bytes"
    assert not (out / "old-0.9.jar").exists()
    assert served.requests[fetched:] == ["/org/example/alpha/1.0/alpha-1.0.jar"]


def test_a_jar_whose_checksum_differs_is_refused_and_not_kept(repository, tmp_path, capsys):
    served, lock, root = repository
    (root / "org/example/alpha/1.0/alpha-1.0.jar").write_bytes(b"tampered bytes!")
    out = tmp_path / "jars"
    assert fetch(lock, out, served.url) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "alpha-1.0.jar: checksum mismatch" in err, err
    assert not list(out.glob("*alpha*")) and not list(out.glob(".*part"))
    assert not (out / setup_jars.STAMP).exists()
    assert fetch(lock, out, served.url + "/missing") == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_the_lock_holds_the_poms_jars_for_the_installed_pyspark():
    import pyspark

    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(setup_jars.POM).getroot()
    props = {p.tag.split("}")[1]: p.text for p in pom.find("m:properties", ns)}
    locked = {(j.group, j.artifact): j for j in setup_jars.read_lock(setup_jars.LOCK)}
    for dep in pom.find("m:dependencies", ns):
        group, artifact = dep.find("m:groupId", ns).text, dep.find("m:artifactId", ns).text
        version = re.sub(
            r"\$\{(.+?)\}", lambda m: props[m.group(1)], dep.find("m:version", ns).text
        )
        assert (group, artifact) in locked, f"{group}:{artifact}: rerun setup_jars.py --lock"
        assert locked[group, artifact].version == version, f"{artifact}: rerun --lock"
    header = setup_jars.LOCK.read_text()
    assert f"pyspark {pyspark.__version__} ships" in header, "pyspark changed: rerun --lock"
