"""A private PostgreSQL server for the test session, and a fresh database per test.

`pg_server` (session) runs initdb into a temp folder and starts the server on
127.0.0.1 at a free port, with its unix socket in that folder; as root (here
and in CI) both run as the `postgres` user, since initdb and pg_ctl refuse
root. Each test gets its own database, copied from a migrated template
(`CREATE DATABASE ... TEMPLATE`: milliseconds). Without PostgreSQL's
binaries (PATH, /usr/lib/postgresql/*/bin) the tests that need it skip and
say why. Local connections trust; TCP ones need the password, so a test can
see a wrong one refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

PG_MISSING = (
    "PostgreSQL not installed: install Debian's postgresql to run the PostgreSQL store tests"
)
TEMPLATE = "campaign_template"
SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def postgres_bin() -> Path | None:
    """The folder with initdb and pg_ctl: on the PATH, else the newest Debian one."""
    found = shutil.which("pg_ctl")
    folders = [Path(found).parent] if found else []
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    folders += sorted(debian, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)[
        ::-1
    ]
    return next((f for f in folders if (f / "initdb").exists() and (f / "pg_ctl").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running server: URLs of its databases, and new databases."""

    bin: Path
    root: Path
    port: int
    password: str
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        return self.root / "data"

    def url(self, database: str, password: str | None = None) -> str:
        """A TCP URL of one of its databases, as the bot's CAMPAIGN_DB would name it."""
        secret = self.password if password is None else password
        return f"postgresql://postgres:{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the `postgres` database (over the unix socket)."""
        return psycopg.connect(
            host=str(self.root), port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def new_database(self, *, migrated: bool = True) -> str:
        """The URL of a new database: a copy of the migrated template, or empty."""
        name = f"test_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'}")
        return self.url(name)


def _runner() -> list[str]:
    """How to run initdb and pg_ctl: as `postgres` when we are root (they refuse root)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)


def start_server(bin_dir: Path) -> PgServer:
    """initdb, start on a free port, and make the migrated template database."""
    root = Path(tempfile.mkdtemp(prefix="campaign-pg-"))
    _give_to_postgres(root)
    server = PgServer(bin_dir, root, _free_port(), secrets.token_urlsafe(12))
    pwfile = root / "pwfile"
    pwfile.write_text(server.password + "\n")
    _give_to_postgres(pwfile)
    run = _runner()
    subprocess.run(
        [
            *run,
            str(bin_dir / "initdb"),
            "-D",
            str(server.data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-h 127.0.0.1 -p {server.port} -k {root} {SERVER_OPTIONS}"
    subprocess.run(
        [
            *run,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(server.data),
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    with server.admin() as conn:
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    # in a thread of its own: a test's event loop may be running in this one
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _migrate(server.url(TEMPLATE))).result()
    return server


async def _migrate(url: str) -> None:
    from storage.postgres.migrate import migrate

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)


def stop_server(server: PgServer) -> None:
    """Stop the server at once and remove its folder."""
    with contextlib.suppress(subprocess.CalledProcessError):
        subprocess.run(
            [
                *_runner(),
                str(server.bin / "pg_ctl"),
                "-D",
                str(server.data),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            check=True,
            capture_output=True,
        )
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's private PostgreSQL server (skips without PostgreSQL's binaries)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(PG_MISSING)
    server = start_server(bin_dir)  # on failure its folder stays, with the server's log
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, migrated database of the session's server."""
    return pg_server.new_database()
