"""Start a throwaway Trino server for the tests (and for .ci/run): a real coordinator on 127.0.0.1.

(Not named trino.py: a script run from tests/support/, such as kill_points.py, would import it in
place of the ``trino`` client package.)

Usage: ``python tests/support/trino_server.py [start] DIR`` prints ``export JDI_TEST_TRINO_...=...`` lines
(eval them); ``python tests/support/trino_server.py stop DIR`` stops it.

Where it comes from: the ``io.trino:trino-server`` tarball of Maven Central, fetched once with
``mvn dependency:copy`` into ``~/.cache/jupyter-di/trino`` and extracted there once (keeping only
the plugins of ``PLUGINS``).  It needs Java 24 or newer
(``JDI_TRINO_JAVA_HOME``, else the first JDK under /usr/lib/jvm that is new enough).

What it serves: a single node (coordinator and worker) bound to 127.0.0.1 on a free port (plus an HTTPS
port: password file or JWT), a 2 GB heap, and catalogs: ``memory`` (no MERGE, no CREATE OR REPLACE),
``iceberg`` (Iceberg tables in a file metastore on the local file system under DIR: MERGE, RENAME,
CREATE OR REPLACE TABLE), ``delta`` and ``hive`` on local files, and ``delta_s3`` and ``hive_s3`` on an
S3 stand-in: moto's standalone server (``moto[server]``), started here before Trino on 127.0.0.1
(its pid in ``DIR/moto.pid``, stopped by ``stop``), bucket ``jdi-lake``, dummy keys.
Catalog management is dynamic, so a test or the benchmark can add ``CREATE CATALOG ... USING
postgresql`` at run time.  The JVM runs in its own session with its pid in ``DIR/trino.pid``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

VERSION = os.environ.get("JDI_TRINO_VERSION", "476")
CACHE = Path(os.environ.get("JDI_TRINO_CACHE", Path.home() / ".cache" / "jupyter-di" / "trino"))
PLUGINS = ("memory", "iceberg", "delta-lake", "hive", "postgresql", "geospatial", "password-authenticators")
"""geospatial: the postgresql connector needs its types; hive serves the staged Parquet files;
password-authenticators: the password file of the HTTPS port."""
MIN_JAVA = 24
HEAP = os.environ.get("JDI_TRINO_HEAP", "2G")
START_TIMEOUT = float(os.environ.get("JDI_TRINO_START_TIMEOUT", "240"))
MERGE_CATALOG = "iceberg"
STAGING_CATALOG = "hive"
DELTA_S3_CATALOG = "delta_s3"
STAGING_S3_CATALOG = "hive_s3"
TEMP_PREFIX = "jdi-trino-"
HTTPS_USER = "jdi"
HTTPS_PASSWORD = "jdi-test-password"
"""The test server's one password user (a throwaway server on 127.0.0.1: not a secret)."""
S3_BUCKET = "jdi-lake"
S3_REGION = "us-east-1"
S3_KEYS = ("jdi-test-access-key", "jdi-test-secret-key")
MIN_MOTO = (5, 2, 2)
"""The S3 stand-in's dummy keys (moto accepts any): not secrets, nothing real behind them."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tarball() -> Path:
    """The server tarball in the cache, fetched from Maven Central by Maven when missing."""
    path = CACHE / f"trino-server-{VERSION}.tar.gz"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mvn", "-q", "dependency:copy", f"-Dartifact=io.trino:trino-server:{VERSION}:tar.gz", f"-DoutputDirectory={CACHE}"],
            check=True,
        )
    return path


def install_dir() -> Path:
    """The extracted server (lib/, plugin/<ours>), extracted once: into a temp folder, then renamed
    (a plugin added to PLUGINS later is moved in beside a server that may be running)."""
    target = CACHE / f"trino-server-{VERSION}"
    missing = [p for p in PLUGINS if not (target / "plugin" / p).is_dir()]
    if (target / "lib").is_dir() and not missing:
        return target
    source = tarball()
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=CACHE))
    try:
        top = f"trino-server-{VERSION}"
        # the whole tarball (its plugins share jars as hard links), then the plugins we do not load go
        subprocess.run(["tar", "-xzf", str(source), "-C", str(tmp)], check=True)
        for plugin in (tmp / top / "plugin").iterdir():
            if plugin.name not in PLUGINS:
                shutil.rmtree(plugin)
        try:
            if (target / "lib").is_dir():
                for name in missing:
                    os.rename(tmp / top / "plugin" / name, target / "plugin" / name)
            else:
                os.rename(tmp / top, target)
        except OSError:  # another process extracted it at the same time
            if not (target / "lib").is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _java_version(java_home: Path) -> int:
    release = java_home / "release"
    if not release.exists():
        return 0
    match = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    return int(match.group(1)) if match else 0


def java_home() -> Path:
    """A JDK new enough for Trino."""
    configured = os.environ.get("JDI_TRINO_JAVA_HOME")
    candidates = [Path(configured)] if configured else sorted(Path("/usr/lib/jvm").glob("*"), key=_java_version, reverse=True)
    for home in candidates:
        if (home / "bin" / "java").exists() and _java_version(home) >= MIN_JAVA:
            return home
    raise RuntimeError(f"Trino {VERSION} needs Java {MIN_JAVA} or newer: install a JDK (e.g. Temurin 25) or set JDI_TRINO_JAVA_HOME.")


JVM_OPTIONS = [
    f"-Xmx{HEAP}",
    "-XX:+UseG1GC",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:ReservedCodeCacheSize=256M",
    "-XX:PerMethodRecompilationCutoff=10000",
    "-XX:PerBytecodeRecompilationCutoff=10000",
    "-XX:+EnableDynamicAgentLoading",
    "-XX:TieredStopAtLevel=4",
    "-Djdk.attach.allowAttachSelf=true",
    "-Djdk.nio.maxCachedBufferSize=2000000",
    "-Dfile.encoding=UTF-8",
]


def _write(path: Path, lines: dict[str, str] | list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = lines if isinstance(lines, list) else [f"{k}={v}" for k, v in lines.items()]
    path.write_text("\n".join(text) + "\n")


def write_auth(base: Path) -> dict[str, Path]:
    """TLS and authentication material under ``base/auth``: a throwaway CA and a server certificate
    for 127.0.0.1/localhost (trustme), the password file (bcrypt, Trino's ``$2y$`` form) and an RSA key
    pair whose public half Trino checks JWTs with (the tests sign with the private half)."""
    import bcrypt
    import trustme
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    auth = base / "auth"
    auth.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    ca.cert_pem.write_to_path(str(auth / "ca.pem"))
    cert = ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.RSA)
    cert.private_key_and_cert_chain_pem.write_to_path(str(auth / "server.pem"))
    hashed = bcrypt.hashpw(HTTPS_PASSWORD.encode(), bcrypt.gensalt(rounds=8)).decode().replace("$2b$", "$2y$", 1)
    (auth / "password.db").write_text(f"{HTTPS_USER}:{hashed}\n")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (auth / "jwt-private.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (auth / "jwt-public.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for path in auth.iterdir():
        path.chmod(0o600)
    return {name: auth / f"{name}.pem" for name in ("ca", "server", "jwt-private", "jwt-public")} | {"password": auth / "password.db"}


def start_s3(base: Path) -> str:
    """The object store of the tests: moto's standalone S3 server (a third-party stand-in, ``moto[server]``) on
    127.0.0.1, in its own session with its pid in ``base/moto.pid``, and the bucket; returns its endpoint.

    Why: Trino 476 writes into an existing Delta Lake table only on object stores (s3, gs, abfs), and the
    Parquet load path's ``s3://`` staging location needs one too."""
    from importlib.metadata import version

    import boto3

    found = tuple(int(n) for n in re.findall(r"\d+", version("moto"))[:3])
    if found < MIN_MOTO:
        raise RuntimeError(
            f"moto {version('moto')} answers CompleteMultipartUpload in a form pyarrow rejects (getmoto/moto#10055): "
            "install the test extra (pip install -e '.[test]', moto[server]>=5.2.2)."
        )
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(base / "moto.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (base / "moto.pid").write_text(str(proc.pid))
    began = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() - began > 60:
                raise RuntimeError(f"the S3 stand-in (moto) did not start; log tail:\n{(base / 'moto.log').read_text()[-2000:]}") from None
            time.sleep(0.2)
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=S3_REGION, aws_access_key_id=S3_KEYS[0], aws_secret_access_key=S3_KEYS[1]
    )
    client.create_bucket(Bucket=S3_BUCKET)
    return endpoint


def _s3_catalog(connector: str, endpoint: str, metastore: str, **extra: str) -> dict[str, str]:
    """A catalog on the S3 stand-in through Trino's native S3 file system; its file metastore lives in
    the bucket too, so a schema's default location (and so every table's) is on S3."""
    return {
        "connector.name": connector,
        "hive.metastore": "file",
        "hive.metastore.catalog.dir": f"s3://{S3_BUCKET}/{metastore}",
        "fs.native-s3.enabled": "true",
        "s3.endpoint": endpoint,
        "s3.region": S3_REGION,
        "s3.path-style-access": "true",
        "s3.aws-access-key": S3_KEYS[0],
        "s3.aws-secret-key": S3_KEYS[1],
        **extra,
    }


def _lake_catalog(connector: str, base: Path, metastore: str, **extra: str) -> dict[str, str]:
    """A catalog on local files under ``base/lake`` with Trino's file metastore (no metastore service;
    ``local:///x`` is ``base/lake/x``)."""
    return {
        "connector.name": connector,
        "hive.metastore.catalog.dir": f"local:///{metastore}",
        "fs.native-local.enabled": "true",
        "local.location": str(base / "lake"),
        **extra,
    }


def write_config(base: Path, install: Path, port: int, https_port: int, s3_endpoint: str) -> Path:
    """etc/ under ``base``: node, JVM, server, authentication and catalog properties; returns the etc folder.

    One server answers on two ports: plain HTTP (the user name only, as every other test uses it) and
    HTTPS, where a password (file authenticator) or a JWT is required."""
    etc = base / "etc"
    data = base / "data"
    for folder in (data, base / "lake" / "metastore", base / "lake" / "staging"):
        folder.mkdir(parents=True, exist_ok=True)
    auth = write_auth(base)
    _write(
        etc / "node.properties",
        {
            "node.environment": "jdi_test",
            "node.id": str(uuid.uuid4()),
            "node.data-dir": str(data),
            "node.bind-ip": "127.0.0.1",
            "node.internal-address": "127.0.0.1",
        },
    )
    _write(etc / "jvm.config", JVM_OPTIONS)
    _write(
        etc / "config.properties",
        {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": str(port),
            "discovery.uri": f"http://127.0.0.1:{port}",
            "http-server.https.enabled": "true",
            "http-server.https.port": str(https_port),
            "http-server.https.keystore.path": str(auth["server"]),
            "http-server.authentication.type": "PASSWORD,JWT",
            "http-server.authentication.allow-insecure-over-http": "true",
            "http-server.authentication.jwt.key-file": str(auth["jwt-public"]),
            "internal-communication.shared-secret": uuid.uuid4().hex,
            "plugin.dir": str(install / "plugin"),
            "catalog.management": "dynamic",  # catalogs: etc/catalog/ under the working directory (base)
            "query.max-memory": "1GB",
            "query.max-memory-per-node": "1GB",
            "task.concurrency": "2",
            "task.max-worker-threads": "4",
            # finished queries are kept (with their text and plan) for query.min-expire-age, 15 min by
            # default: a load of ~1 MB INSERT statements then fills a 2 GB heap within minutes
            "query.min-expire-age": "30s",
            "query.max-history": "20",
            "log.path": str(base / "server.log"),
        },
    )
    _write(etc / "password-authenticator.properties", {"password-authenticator.name": "file", "file.password-file": str(auth["password"])})
    _write(etc / "log.properties", {"io.trino": "WARN", "io.trino.server.Server": "INFO"})
    _write(etc / "catalog" / "memory.properties", {"connector.name": "memory", "memory.max-data-per-node": "512MB"})
    # Trino's file metastore for Iceberg (the catalog type its own tests use)
    _write(
        etc / "catalog" / "iceberg.properties",
        _lake_catalog("iceberg", base, "metastore", **{"iceberg.catalog.type": "TESTING_FILE_METASTORE"}),
    )
    # the local file system has no atomic rename for Delta's log, so Trino wants this said out loud
    delta = {"hive.metastore": "file", "delta.enable-non-concurrent-writes": "true"}
    _write(etc / "catalog" / "delta.properties", _lake_catalog("delta_lake", base, "delta-metastore", **delta))
    # the staging catalog of the Parquet load path: external tables over the files under lake/staging
    _write(etc / "catalog" / f"{STAGING_CATALOG}.properties", _lake_catalog("hive", base, "hive-metastore", **{"hive.metastore": "file"}))
    # the same on the S3 stand-in: Delta Lake with writes into existing tables (swap, MERGE), and a
    # Hive staging catalog for an s3:// staging_location
    _write(etc / "catalog" / f"{DELTA_S3_CATALOG}.properties", _s3_catalog("delta_lake", s3_endpoint, "delta-metastore"))
    _write(etc / "catalog" / f"{STAGING_S3_CATALOG}.properties", _s3_catalog("hive", s3_endpoint, "hive-metastore"))
    return etc


def _properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _ready(port: int) -> bool:
    """The coordinator answers and has finished starting (``/v1/info`` says ``starting: false``)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/info", timeout=2) as response:
            return not json.load(response).get("starting", True)
    except (OSError, ValueError):
        return False


def start(base_dir: str | None = None) -> dict[str, str]:
    """Write the config, start the server in the background, wait until it answers; returns the env."""
    base = Path(base_dir or tempfile.mkdtemp(prefix=TEMP_PREFIX)).absolute()
    base.mkdir(parents=True, exist_ok=True)
    install = install_dir()
    port, https_port = free_port(), free_port()
    try:
        s3_endpoint = start_s3(base)
    except BaseException:
        stop(str(base))
        raise
    etc = write_config(base, install, port, https_port, s3_endpoint)
    java = java_home() / "bin" / "java"
    node = _properties(etc / "node.properties")
    cmd = [
        str(java),
        *JVM_OPTIONS,
        *(f"-D{k}={v}" for k, v in node.items()),
        f"-Dconfig={etc / 'config.properties'}",
        f"-Dlog.levels-file={etc / 'log.properties'}",
        "-cp",
        str(install / "lib" / "*"),
        "io.trino.server.TrinoServer",
    ]
    began = time.monotonic()
    with open(base / "launcher.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=base, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (base / "trino.pid").write_text(str(proc.pid))
    while not _ready(port):
        if proc.poll() is not None or time.monotonic() - began > START_TIMEOUT:
            tail = (base / "launcher.log").read_text(errors="replace")[-3000:]
            stop(str(base))
            raise RuntimeError(f"Trino did not start (exit {proc.returncode}); log tail:\n{tail}")
        time.sleep(0.5)
    return {
        "JDI_TEST_TRINO_HOST": "127.0.0.1",
        "JDI_TEST_TRINO_PORT": str(port),
        "JDI_TEST_TRINO_USER": "jdi",
        "JDI_TEST_TRINO_CATALOG": MERGE_CATALOG,
        "JDI_TEST_TRINO_DIR": str(base),
        "JDI_TEST_TRINO_HTTPS_PORT": str(https_port),
        "JDI_TEST_TRINO_STAGING_CATALOG": STAGING_CATALOG,
        "JDI_TEST_TRINO_STAGING_LOCATION": str(base / "lake" / "staging"),
        "JDI_TEST_TRINO_STAGING_SERVER_LOCATION": "local:///staging",
        "JDI_TEST_TRINO_S3_ENDPOINT": s3_endpoint,
        "JDI_TEST_TRINO_S3_BUCKET": S3_BUCKET,
        "JDI_TEST_TRINO_DELTA_S3_CATALOG": DELTA_S3_CATALOG,
        "JDI_TEST_TRINO_STAGING_S3_CATALOG": STAGING_S3_CATALOG,
        "JDI_TEST_TRINO_START_SECONDS": f"{time.monotonic() - began:.1f}",
    }


def stop(base_dir: str) -> None:
    """Stop the server and the S3 stand-in (TERM, then KILL after 20 s); a folder ``start`` made in /tmp
    is deleted too."""
    base = Path(base_dir)
    for name in ("trino.pid", "moto.pid"):
        _stop_pid(base / name)
    if base.name.startswith(TEMP_PREFIX) and base.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(base, ignore_errors=True)


def _stop_pid(pid_file: Path) -> None:
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(200):
                os.kill(pid, 0)
                try:  # reap it when it is our child (the pytest session started it)
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        break
                except ChildProcessError:
                    pass
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        pid_file.unlink(missing_ok=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "stop":
        stop(args[1])
    else:
        if args and args[0] == "start":
            args = args[1:]
        for key, value in start(args[0] if args else None).items():
            print(f"export {key}={value}")
