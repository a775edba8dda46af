"""`python -m bench.runtime`: the runtime's serving cost and throughput on the CPU, as JSON on stdout.

Same model, prompts, greedy settings and thread count for every way of running it:
  in_process       llama-cpp-python called directly, no HTTP (embeddings: the runtime's own engine);
  runtime          this project's service (`python -m runtime`), OpenAI routes over loopback HTTP;
  llama_cpp_server llama-cpp-python's own server (`python -m llama_cpp.server`), the same routes;
  llama_server     llama.cpp's own server with `--parallel 8` (continuous batching), generation only.
                   Built from the llama.cpp that llama-cpp-python vendors (docs/runtime.md); found via
                   --llama-server or LLAMA_SERVER_BIN, and left out with a note when absent.
The machine is shared, so measurements are interleaved (request by request at one client, round by
round at 4 and 8) and every system sees the same background load; CPU time per token/embedding (of the
server process, or of the calling thread in-process) is reported too, as it hardly depends on that load.
"answers_changed_by_load" counts the prompts whose answer under 4 or 8 clients differs from the one the
same system gave at one client. Serving overhead = how much lower the runtime's throughput is than
in-process at one client. Targets: overhead <= 5%; throughput >= llama_cpp.server's at 1 and 8 clients;
at 8 clients >= 0.75x llama-server's (stretch 1.0x) with 0 answers changed by load.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import llama_cpp

from runtime.config.model_source import resolve_model
from runtime.config.settings import RuntimeSettings
from runtime.engine.engines import EmbeddingEngine, LlamaOptions
from scripts.harness import Service, free_port

PROMPTS = [
    "The three primary colors are",
    "Write a short poem about the sea:",
    "def fibonacci(n):",
    "The capital of France is",
    "Once upon a time, in a small village,",
    "Explain photosynthesis in one sentence:",
    "1, 2, 3, 4, 5,",
    "The best way to learn a language is",
]
TEXTS = [f"{prompt} (sample {index})" for index in range(2) for prompt in PROMPTS]
CLIENTS = 8
CLIENT_COUNTS = (1, 4, CLIENTS)

# call(index) -> (units produced: tokens or embeddings, the answer text for comparisons)
Call = Callable[[int], tuple[int, str]]
CpuClock = Callable[[], float]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_clock(pid: int) -> CpuClock:
    """CPU seconds (user + system) a process has used so far, from /proc."""

    def seconds() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    return seconds


class System:
    """One way of running the model: how to call it and how to read the CPU time it spends."""

    def __init__(self, call: Call, cpu_clock: CpuClock):
        self.call = call
        self.cpu_clock = cpu_clock


class Tally:
    """Latencies, units and busy time of one system under one load."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.units = 0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.answers: dict[int, set[str]] = {}  # prompt index -> the answers it got

    def figures(self, unit: str) -> dict:
        ordered = sorted(self.latencies)

        def at(fraction: float) -> float:
            return round(ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1000, 1)

        return {
            "requests": len(ordered),
            "wall_s": round(self.wall_s, 3),
            f"{unit}_per_s": round(self.units / self.wall_s, 2),
            "latency_ms_p50": at(0.5),
            "latency_ms_p95": at(0.95),
            f"cpu_ms_per_{unit.rstrip('s')}": round(self.cpu_s / self.units * 1000, 2),
        }


def timed(call: Call, index: int, tally: Tally) -> None:
    started = time.perf_counter()
    units, answer = call(index)
    tally.latencies.append(time.perf_counter() - started)
    tally.units += units
    tally.answers.setdefault(index, set()).add(answer)


def one_client(systems: dict[str, System], jobs: int) -> dict[str, Tally]:
    """Each job on every system in turn, so drift in the machine's load hits all of them alike."""
    tallies = {name: Tally() for name in systems}
    for index in range(jobs):
        for name, system in systems.items():
            cpu_before = system.cpu_clock()
            timed(system.call, index, tallies[name])
            tallies[name].cpu_s += system.cpu_clock() - cpu_before
    for tally in tallies.values():
        tally.wall_s = sum(tally.latencies)
    return tallies


def many_clients(systems: dict[str, System], jobs: int, rounds: int, clients: int) -> dict[str, Tally]:
    """`rounds` rounds; in each, every system in turn gets `jobs` requests from `clients` threads."""
    tallies = {name: Tally() for name in systems}
    for _ in range(rounds):
        for name, system in systems.items():
            tally = tallies[name]
            started, cpu_before = time.perf_counter(), system.cpu_clock()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                list(pool.map(lambda index, c=system.call, t=tally: timed(c, index, t), range(jobs)))
            tally.wall_s += time.perf_counter() - started
            tally.cpu_s += system.cpu_clock() - cpu_before
    return tallies


def on_own_thread(work: Call) -> System:
    """Run in-process calls on one dedicated thread, as the runtime runs its model.

    Measured here: llama.cpp calls made from Python's main thread took several times longer in wall
    time (not in CPU time) than the same calls from another thread, which would flatter the servers.
    """
    pool = ThreadPoolExecutor(max_workers=1)
    cpu_s = [0.0]

    def measured(index: int) -> tuple[int, str]:
        started = time.thread_time()
        try:
            return work(index)
        finally:
            cpu_s[0] += time.thread_time() - started

    return System(lambda index: pool.submit(measured, index).result(), lambda: cpu_s[0])


def in_process_generation(model_path: str, args: argparse.Namespace) -> System:
    llama = llama_cpp.Llama(
        model_path, n_ctx=args.n_ctx, n_threads=args.threads, n_threads_batch=args.threads, verbose=False
    )

    def generate(index: int) -> tuple[int, str]:
        llama.reset()
        answer = llama.create_completion(
            PROMPTS[index % len(PROMPTS)], max_tokens=args.max_tokens, temperature=0.0, top_k=1
        )
        return answer["usage"]["completion_tokens"], answer["choices"][0]["text"]

    # With one llama.cpp thread the work runs on the calling thread: its CPU clock is the cost.
    return on_own_thread(generate)


def in_process_embedding(model_path: str, args: argparse.Namespace) -> System:
    engine = EmbeddingEngine(model_path, LlamaOptions(args.n_ctx, 0, args.threads, seed=42))
    never = threading.Event()

    def embed(index: int) -> tuple[int, str]:
        return 1, json.dumps(engine.embed([TEXTS[index % len(TEXTS)]], never)[0].tolist())

    return on_own_thread(embed)


def http_generation(base_url: str, pid: int, args: argparse.Namespace, **extra: object) -> System:
    http = httpx.Client(base_url=base_url, timeout=600, limits=httpx.Limits(max_connections=CLIENTS))
    model = http.get("/v1/models").json()["data"][0]["id"]

    def generate(index: int) -> tuple[int, str]:
        body = {
            "model": model,
            "prompt": PROMPTS[index % len(PROMPTS)],
            "max_tokens": args.max_tokens,
            "temperature": 0.0,
            **extra,
        }
        answer = http.post("/v1/completions", json=body)
        answer.raise_for_status()
        data = answer.json()
        return data["usage"]["completion_tokens"], data["choices"][0]["text"]

    return System(generate, process_cpu_clock(pid))


def http_embedding(base_url: str, pid: int) -> System:
    http = httpx.Client(base_url=base_url, timeout=600, limits=httpx.Limits(max_connections=CLIENTS))
    model = http.get("/v1/models").json()["data"][0]["id"]

    def embed(index: int) -> tuple[int, str]:
        answer = http.post(
            "/v1/embeddings",
            json={"model": model, "input": TEXTS[index % len(TEXTS)], "encoding_format": "float"},
        )
        answer.raise_for_status()
        return 1, ""

    return System(embed, process_cpu_clock(pid))


@contextmanager
def served(
    name: str, argv_for_port: Callable[[int], list[str]], ready_path: str, logs: Path
) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of a server process started for the measurement."""
    port = free_port()
    service = Service(name, argv_for_port(port), log_path=logs / f"{name}.log")
    service.start()
    try:
        service.wait_ready(f"http://127.0.0.1:{port}{ready_path}", timeout_s=300)
        yield f"http://127.0.0.1:{port}", service.pid
    finally:
        service.stop()


def runtime_argv(model_path: str, args: argparse.Namespace) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable,
        "-m",
        "runtime",
        "--port",
        str(port),
        "--n-ctx",
        str(args.n_ctx),
        "--model-path",
        model_path,
        "--n-threads",
        str(args.threads),
        "--log-level",
        "warning",
    ]


def llama_cpp_server_argv(
    model_path: str, args: argparse.Namespace, *extra: str
) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        model_path,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(args.n_ctx),
        "--n_threads",
        str(args.threads),
        "--n_threads_batch",
        str(args.threads),
        "--verbose",
        "false",
        *extra,
    ]


def llama_server_argv(binary: str, model_path: str, args: argparse.Namespace) -> Callable[[int], list[str]]:
    # Its context is split among the slots: the same context per request as the others.
    return lambda port: [
        binary,
        "--model",
        model_path,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        str(args.n_ctx * CLIENTS),
        "--parallel",
        str(CLIENTS),
        "--threads",
        str(args.threads),
        "--threads-batch",
        str(args.threads),
        "--no-webui",
    ]


def find_llama_server(flag: str | None) -> str | None:
    candidate = flag or os.environ.get("LLAMA_SERVER_BIN") or shutil.which("llama-server")
    return candidate if candidate and os.access(candidate, os.X_OK) else None


def measure(systems: dict[str, System], jobs: int, args: argparse.Namespace, unit: str) -> dict[str, dict]:
    for system in systems.values():
        system.call(0)  # warm-up
    single = one_client(systems, jobs)
    figures = {name: {"c1": tally.figures(unit)} for name, tally in single.items()}
    servers = {k: v for k, v in systems.items() if k != "in_process"}
    changed: dict[str, set[int]] = {name: set() for name in servers}
    for clients in CLIENT_COUNTS[1:]:
        for name, tally in many_clients(servers, jobs, args.rounds, clients).items():
            figures[name][f"c{clients}"] = tally.figures(unit)
            changed[name] |= {i for i, seen in tally.answers.items() if seen != single[name].answers[i]}
    for name in servers:
        figures[name]["answers_changed_by_load"] = len(changed[name])
    figures["_answers"] = {name: tally.answers for name, tally in single.items()}
    return figures


def percent_lower(baseline: float, measured: float) -> float:
    return round((baseline - measured) / baseline * 100, 2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.runtime", description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of concurrent requests per system")
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="llama.cpp threads (generation and prompt batches), the same for all",
    )
    parser.add_argument("--llama-server", help="llama.cpp's llama-server binary (default: $LLAMA_SERVER_BIN)")
    args = parser.parse_args()
    llama_server = find_llama_server(args.llama_server)
    if llama_server is None:
        print(
            "llama-server not found (--llama-server or LLAMA_SERVER_BIN): its anchor is left out",
            file=sys.stderr,
        )

    model_path = str(resolve_model(RuntimeSettings(_env_file=None)).path)
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as logs_dir:
        logs = Path(logs_dir)
        with served("runtime", runtime_argv(model_path, args), "/readyz", logs) as (runtime_url, runtime_pid):
            with ExitStack() as anchors:
                server_url, server_pid = anchors.enter_context(
                    served("llama_cpp_server", llama_cpp_server_argv(model_path, args), "/v1/models", logs)
                )
                systems = {
                    "in_process": in_process_generation(model_path, args),
                    "runtime": http_generation(runtime_url, runtime_pid, args),
                    "llama_cpp_server": http_generation(server_url, server_pid, args),
                }
                if llama_server is not None:
                    url, pid = anchors.enter_context(
                        served(
                            "llama_server", llama_server_argv(llama_server, model_path, args), "/health", logs
                        )
                    )
                    # No prompt-cache reuse: it changes batch shapes, as the runtime's reset before
                    # every request rules out (docs/runtime.md).
                    systems["llama_server"] = http_generation(url, pid, args, cache_prompt=False)
                generation = measure(systems, len(PROMPTS), args, "tokens")
            # llama_cpp.server needs a second process for embeddings, and it has no pooling setting:
            # for this model it returns one vector per token, un-normalised. Compared for speed only.
            with served(
                "llama_cpp_server_embedding",
                llama_cpp_server_argv(model_path, args, "--embedding", "true"),
                "/v1/models",
                logs,
            ) as (server_url, server_pid):
                embedding = measure(
                    {
                        "in_process": in_process_embedding(model_path, args),
                        "runtime": http_embedding(runtime_url, runtime_pid),
                        "llama_cpp_server": http_embedding(server_url, server_pid),
                    },
                    len(TEXTS),
                    args,
                    "embeddings",
                )

    answers = generation.pop("_answers")
    embedding.pop("_answers")
    ratio = {
        f"{kind}_c{c}": round(
            figures["runtime"][f"c{c}"][unit] / figures["llama_cpp_server"][f"c{c}"][unit], 3
        )
        for kind, figures, unit in (
            ("generation", generation, "tokens_per_s"),
            ("embeddings", embedding, "embeddings_per_s"),
        )
        for c in CLIENT_COUNTS
    }
    vs_llama_server = (
        {
            f"generation_c{c}": round(
                generation["runtime"][f"c{c}"]["tokens_per_s"]
                / generation["llama_server"][f"c{c}"]["tokens_per_s"],
                3,
            )
            for c in CLIENT_COUNTS
        }
        if llama_server is not None
        else "llama-server not available"
    )
    overhead = {
        "generation": percent_lower(
            generation["in_process"]["c1"]["tokens_per_s"], generation["runtime"]["c1"]["tokens_per_s"]
        ),
        "embeddings": percent_lower(
            embedding["in_process"]["c1"]["embeddings_per_s"], embedding["runtime"]["c1"]["embeddings_per_s"]
        ),
    }
    extra_cpu = {
        kind: round(
            (figures["runtime"]["c1"][key] - figures["in_process"]["c1"][key])
            / figures["in_process"]["c1"][key]
            * 100,
            2,
        )
        for kind, figures, key in (
            ("generation", generation, "cpu_ms_per_token"),
            ("embeddings", embedding, "cpu_ms_per_embedding"),
        )
    }
    report = {
        "bench": "runtime",
        "machine": {
            "cpus": os.cpu_count(),
            # At the end of the run: the machine is shared, so read the figures next to it.
            "load_average_1m_5m_15m": [round(load, 2) for load in os.getloadavg()],
            "platform": platform.platform(),
            "backend": "cpu",
            "llama_cpp_python": llama_cpp.__version__,
            "threads": args.threads,
        },
        "load": {
            "prompts": len(PROMPTS),
            "max_tokens": args.max_tokens,
            "embedding_texts": len(TEXTS),
            "n_ctx": args.n_ctx,
            "clients": list(CLIENT_COUNTS),
            "rounds_at_4_and_8": args.rounds,
        },
        "generation": generation,
        "embeddings": embedding,
        "serving_overhead_percent": overhead,
        "serving_extra_cpu_percent": extra_cpu,
        "runtime_vs_llama_cpp_server_throughput_ratio": ratio,
        "runtime_vs_llama_server_throughput_ratio": vs_llama_server,
        "same_text_as_in_process": {
            name: answers[name] == answers["in_process"] for name in ("runtime", "llama_cpp_server")
        },
        "targets_met": {
            "serving_overhead_le_5_percent": overhead["generation"] <= 5,
            "throughput_ge_llama_cpp_server_c1": ratio["generation_c1"] >= 1,
            "throughput_ge_llama_cpp_server_c8": ratio["generation_c8"] >= 1,
            "no_answer_changed_by_load": generation["runtime"]["answers_changed_by_load"] == 0,
            **(
                {
                    "throughput_ge_0_75_llama_server_c8": vs_llama_server["generation_c8"] >= 0.75,
                    "throughput_ge_llama_server_c8": vs_llama_server["generation_c8"] >= 1,
                }
                if isinstance(vs_llama_server, dict)
                else {}
            ),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
