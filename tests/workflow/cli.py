"""Running the real ``strongroom`` entry point: as a subprocess, and through a pseudo-terminal for the prompts."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STRONGROOM = shutil.which("strongroom") or os.path.join(os.path.dirname(sys.executable), "strongroom")


def write_config(path: Path, envs: dict[str, str]) -> Path:
    lines = []
    for name, addr in envs.items():
        lines += [f"[environments.{name}]", f'address = "{addr}"', 'login = "token"', ""]
    path.write_text("\n".join(lines))
    return path


def base_env(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRONGROOM_", "VAULT_"))}
    env.update({"STRONGROOM_CONFIG": str(config), "NO_COLOR": "1", "TERM": "dumb"}, **extra)
    return env


def run(args: list[str], env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [STRONGROOM, *args],
        input=b"" if stdin is None else stdin,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )


@dataclass
class Terminal:
    """A child process on a pseudo-terminal: wait for a prompt, type an answer."""

    pid: int
    fd: int
    transcript: str = ""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.transcript:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"did not see {text!r}; transcript so far:\n{self.transcript}")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise EOFError(f"process ended before {text!r}; transcript:\n{self.transcript}")
                self.transcript += chunk.decode(errors="replace")
        return self.transcript

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                    self.transcript += chunk.decode(errors="replace")
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        raise TimeoutError(f"process did not exit; transcript:\n{self.transcript}")


def spawn(args: list[str], env: dict[str, str]) -> Terminal:
    pid, fd = pty.fork()
    if pid == 0:  # child: becomes the CLI on the terminal
        try:
            os.execve(STRONGROOM, [STRONGROOM, *args], env)
        finally:
            os._exit(127)
    return Terminal(pid, fd)
