"""The Kafka jars and the Java that runs them: the official Maven Central artifacts of pom.xml
(beside this file), fetched by Maven once into a cache folder; every later start only runs `java`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

log = logging.getLogger(__name__)

POM = Path(__file__).with_name("pom.xml")
MINIMUM_JAVA = 17
INSTALL_JAVA = "install a JDK 17 or newer (e.g. apt-get install openjdk-17-jdk-headless)"
INSTALL_MAVEN = "install Maven (e.g. apt-get install maven)"


class KafkaUnavailable(RuntimeError):
    """Kafka cannot run on this machine: Java or Maven is missing, or the jars cannot be fetched."""


def kafka_version() -> str:
    """The Kafka version the pom asks for (it names the cache folder)."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ElementTree.parse(POM).getroot().findtext("m:properties/m:kafka.version", namespaces=namespace)
    if not version:
        raise KafkaUnavailable(f"{POM} has no <kafka.version> property")
    return version.strip()


def find_java() -> str:
    """The `java` on PATH, checked to be new enough for Kafka 4."""
    java = shutil.which("java")
    if java is None:
        raise KafkaUnavailable(f"java is not on PATH; {INSTALL_JAVA}")
    result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    major = _java_major_version(result.stderr + result.stdout)
    if major is None:
        raise KafkaUnavailable(f"cannot tell the version of {java} (`java -version` said {result.stderr.strip()!r})")
    if major < MINIMUM_JAVA:
        raise KafkaUnavailable(f"{java} is Java {major}, Kafka 4 needs Java {MINIMUM_JAVA}; {INSTALL_JAVA}")
    return java


def _java_major_version(version_output: str) -> int | None:
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    first, second = int(match.group(1)), int(match.group(2) or 0)
    return second if first == 1 else first  # Java 8 and older call themselves "1.8"


def ensure_jars(cache_dir: Path) -> Path:
    """The folder of Kafka's jars, fetched with Maven on first use.

    The folder is ``<cache_dir>/<kafka version>/lib``; a stamp holding the pom's digest marks it complete,
    so an interrupted fetch or an edited pom fetches again.
    """
    version = kafka_version()
    lib = Path(cache_dir).resolve() / version / "lib"
    stamp = lib / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(f"mvn is not on PATH and the Kafka {version} jars are not cached yet; {INSTALL_MAVEN}")
    lib.parent.mkdir(parents=True, exist_ok=True)
    # Fetch into a fresh folder and move it into place, so no one ever sees a half-filled lib.
    staging = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
    command = [
        mvn,
        "--batch-mode",
        "--quiet",
        "--file",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    log.info("fetching the Kafka %s jars with Maven into %s (first run only)", version, lib)
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        said = _last_lines(result.stdout + result.stderr, 15) or "(no output)"
        raise KafkaUnavailable(f"Maven could not fetch the Kafka {version} jars (exit {result.returncode}): {said}")
    (staging / stamp.name).write_text(digest)
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    log.info("fetched the Kafka %s jars in %.1f s", version, time.monotonic() - started)
    return lib


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
