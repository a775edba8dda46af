"""Prometheus metrics, one registry per app so tests can run several apps in one process."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class RuntimeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "runtime_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "runtime_request_duration_seconds",
            "HTTP request latency (to the last byte)",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Counts real engine runs, not requests: the end-to-end tests prove coalescing with it.
        self.inferences = Counter(
            "runtime_inferences", "Engine runs by kind", ["kind"], registry=self.registry
        )
        self.inference_seconds = Histogram(
            "runtime_inference_duration_seconds",
            "Time the model spent on one request",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "runtime_prompt_tokens", "Prompt tokens evaluated", ["kind"], registry=self.registry
        )
        self.generated_tokens = Counter(
            "runtime_generated_tokens", "Tokens generated", registry=self.registry
        )
        # Documents /v1/rerank scored (one prefill each): the e2e tests prove per-pair caching with it.
        self.rerank_documents = Counter(
            "runtime_rerank_documents", "Documents scored for relevance", registry=self.registry
        )
        self.queue_depth = Gauge(
            "runtime_queue_depth", "Requests waiting for a model", ["model"], registry=self.registry
        )
        self.rejected = Counter(
            "runtime_queue_rejections",
            "Requests refused because the queue was full",
            ["model"],
            registry=self.registry,
        )
        self.cancelled = Counter(
            "runtime_cancelled",
            "Requests abandoned because the client went away",
            ["kind"],
            registry=self.registry,
        )
        self.model_load_seconds = Gauge(
            "runtime_model_load_seconds",
            "Seconds it took to load each model",
            ["model"],
            registry=self.registry,
        )
        self.ready = Gauge("runtime_ready", "1 once the models are loaded", registry=self.registry)
        for kind in ("generate", "embed", "rerank"):
            self.inferences.labels(kind=kind)
