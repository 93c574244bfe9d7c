"""A PostgreSQL cluster a test owns: it may stop and start it at will.

Built with the server's own tools (initdb, pg_ctl) in a temporary directory
owned by the ``postgres`` OS user, since initdb refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def find_postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ScratchCluster:
    bin_dir: Path
    directory: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def create(cls, bin_dir: Path, *, server_options: str = "") -> ScratchCluster:
        directory = Path(tempfile.mkdtemp(prefix="csms-pg-", dir="/tmp"))
        shutil.chown(directory, "postgres", "postgres")
        cluster = cls(bin_dir, directory, _free_port())
        cluster._run(
            "initdb",
            "-D",
            str(cluster.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )
        cluster._options = (
            f"-p {cluster.port} -k {directory} -c listen_addresses=127.0.0.1 "
            f"-c fsync=off {server_options}"
        )
        return cluster

    _options: str = ""

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.directory / "server.log"),
            "-o",
            self._options,
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data_dir))

    def destroy(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin_dir / tool), *args],
            check=True,
            capture_output=True,
            cwd=self.directory,
            env={**os.environ, "LC_ALL": "C"},
            timeout=60,
        )
