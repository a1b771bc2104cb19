"""Prometheus text exposition for the server: request counts by status, tokens, queue depth, latency."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Histogram:
    def __init__(self, buckets=LATENCY_BUCKETS):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        suffix = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{suffix} {self.sum:.6f}")
        out.append(f"{name}_count{suffix} {self.total}")
        return out


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests = defaultdict(int)  # (endpoint, status) -> count
        self.latency = defaultdict(Histogram)  # endpoint -> end-to-end seconds
        self.ttft = Histogram()

    def count(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, int(status))] += 1

    def observe_latency(self, endpoint: str, seconds: float) -> None:
        with self._lock:
            self.latency[endpoint].observe(seconds)

    def observe_ttft(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def render(self, core) -> str:
        """`core`: the engine's EngineCore (its queue, batch and token counters)."""
        with self._lock:
            lines = ["# HELP sealion_requests_total HTTP requests by endpoint and status code.",
                     "# TYPE sealion_requests_total counter"]
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(f'sealion_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
            gauges = [
                ("sealion_queue_depth", "Requests waiting for a batch slot.", core.waiting_count),
                ("sealion_running_requests", "Requests in the running decode batch.", core.running_count),
            ]
            for name, help_, value in gauges:
                lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {value}"]
            counters = [
                ("sealion_prompt_tokens_total", "Prompt tokens prefilled.", core.prompt_tokens_total),
                ("sealion_cached_prompt_tokens_total", "Prompt tokens taken from the prefix cache.",
                 core.cached_prompt_tokens_total),
                ("sealion_generation_tokens_total", "Tokens generated.", core.generated_tokens_total),
                ("sealion_forward_steps_total", "Model forward passes (prefill and decode).",
                 core.forward_steps_total),
                ("sealion_decode_rows_total", "Sum of decode batch sizes (divide by decode steps for the mean).",
                 core.batch_rows_total),
            ]
            for name, help_, value in counters:
                lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name} {value}"]
            lines += ["# HELP sealion_request_latency_seconds End-to-end latency of answered requests.",
                      "# TYPE sealion_request_latency_seconds histogram"]
            for endpoint, hist in sorted(self.latency.items()):
                lines += hist.lines("sealion_request_latency_seconds", f'endpoint="{endpoint}"')
            lines += ["# HELP sealion_time_to_first_token_seconds Time from admission to the first token.",
                      "# TYPE sealion_time_to_first_token_seconds histogram"]
            lines += self.ttft.lines("sealion_time_to_first_token_seconds")
        return "\n".join(lines) + "\n"
