"""Load: 32 concurrent clients x several requests; every answer complete and right, none lost."""

from __future__ import annotations

import threading

import openai
from scripted import ASK, GREET, TOOLS

CLIENTS = 32
PER_CLIENT = 3


def test_32_concurrent_clients(server):
    sched = server.app.state.sealion.core
    steps_before, rows_before = sched.forward_steps_total, sched.batch_rows_total
    results, failures = [], []
    lock = threading.Lock()

    def client_loop(k: int) -> None:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=600)
        for i in range(PER_CLIENT):
            kind = (k + i) % 3
            try:
                if kind == 0:
                    r = client.chat.completions.create(model="tiny", messages=GREET, temperature=0, max_tokens=20)
                    got = r.choices[0].message.content
                    ok = got == "Hello there!" and r.choices[0].finish_reason == "stop"
                elif kind == 1:
                    r = client.chat.completions.create(model="tiny", messages=ASK, tools=TOOLS, temperature=0,
                                                       max_tokens=40)
                    calls = r.choices[0].message.tool_calls or []
                    got = [(c.function.name, c.function.arguments) for c in calls]
                    ok = got == [("get_weather", '{"city": "Hanoi"}')]
                else:
                    stream = client.chat.completions.create(model="tiny", messages=GREET, temperature=0,
                                                            max_tokens=20, stream=True)
                    got = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                    ok = got == "Hello there!"
            except Exception as e:  # a lost request is a failure, reported with the rest
                got, ok = f"{type(e).__name__}: {e}", False
            with lock:
                (results if ok else failures).append((k, i, got))

    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(CLIENTS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(900)
    assert failures == []
    assert len(results) == CLIENTS * PER_CLIENT
    # the requests were batched: decode steps averaged well over one row each
    steps = sched.forward_steps_total - steps_before
    rows = sched.batch_rows_total - rows_before
    assert rows / steps > 4, f"mean decode batch {rows / steps:.1f}"
    assert sched.running_count == 0 and sched.waiting_count == 0
