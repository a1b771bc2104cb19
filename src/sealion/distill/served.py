"""A served teacher: top-k prompt log-probs from OpenAI-compatible servers (vLLM, `sealion serve`).

Each example is one `POST {url}/completions` with the token ids as `prompt` (a list of ints), `max_tokens: 1` and
`prompt_logprobs: k` (vLLM's extension). The answer's `choices[0].prompt_logprobs` has one entry per prompt token:
None for the first, else `{token_id: {logprob, rank, decoded_token}}` holding the k best of p(. | earlier tokens)
and the prompt token itself (which may rank below k; it is dropped then).

What is exact: the server's log-probs are normalised over the whole vocabulary at temperature 1, so the stored top-k
and the tail mass 1 - sum(top-k) are exact at T=1 (up to the server's float precision). Tails at any other
temperature need logits outside the top-k, which no server returns, so a served capture stores only T=1 (and
training at another temperature with missing="tail" is refused by `open_captures`).

Several teachers are combined as a mixture p = sum_i w_i p_i (weights normalised). An id outside teacher i's top-k
counts 0 for it, so the stored probabilities are lower bounds, exact for ids in every teacher's top-k; the tail is
1 - the stored mass, so the k+1 buckets still sum to one.

Requests go through the `openai` client (engine/http.py `openai_client`, the one place clients are built), `concurrency`
at a time; the client retries connection errors, 408/409/429 and 5xx with exponential backoff (`retries` times) and
enforces the per-request timeout; other 4xx answers stop the capture with the server's message.
Resume is the capture's: finished shards are kept.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, DataError
from .codec import tail_logmass
from .data import Example


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Endpoint:
    url: str  # the API base, e.g. http://127.0.0.1:8000/v1
    weight: float = 1.0
    model: str | None = None  # the served model's id (asked from GET /models when None)


def parse_teachers(teacher: str, extra: list[str] | None = None, weights: list[float] | None = None) -> list[Endpoint]:
    """The teacher URL plus any further ones, each with its weight (default equal)."""
    urls = [teacher, *(extra or [])]
    bad = [u for u in urls if not is_url(u)]
    if bad:
        raise ConfigError(f"teacher {bad[0]!r}: served teachers are http(s) URLs of an OpenAI-compatible API (…/v1)")
    if weights is None:
        weights = [1.0] * len(urls)
    if len(weights) != len(urls):
        raise ConfigError(f"teacher_weights: {len(weights)} weight(s) for {len(urls)} teacher(s)")
    if any(not w > 0 for w in weights):
        raise ConfigError(f"teacher_weights: must all be > 0, got {weights}")
    total = float(sum(weights))
    return [Endpoint(u.rstrip("/"), w / total) for u, w in zip(urls, weights)]


class ServedTeacher:
    """Scores examples against one or more served teachers (see the module docstring)."""

    def __init__(self, endpoints: list[Endpoint], *, k: int, concurrency: int = 8, retries: int = 4,
                 timeout: float = 600.0, api_key: str | None = None):
        from ..engine.http import openai_client

        self.k, self.concurrency = k, concurrency
        # one client per endpoint; each keeps its own connection pool and does its own retries and timeout
        self.clients = {e.url: openai_client(e.url, api_key=api_key, timeout=timeout, max_retries=retries)
                        for e in endpoints}
        self.endpoints = [e if e.model else Endpoint(e.url, e.weight, self._model_id(e.url)) for e in endpoints]

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    # ------------------------------------------------------------------------------------------------ HTTP
    def _call(self, url: str, what: str, fn):
        """fn() with the client's errors turned into one-line DataErrors naming the URL (retries are the client's)."""
        import openai

        try:
            return fn()
        except openai.APIStatusError as e:
            retried = e.status_code in (408, 409, 429) or e.status_code >= 500
            tries = f" after {self.clients[url].max_retries + 1} tries" if retried else ""
            raise DataError(f"{url}/{what}: HTTP {e.status_code}{tries}: {str(e.message)[:300]}") from None
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            raise DataError(f"{url}/{what}: cannot reach the server ({type(cause).__name__}: {cause}; after "
                            f"{self.clients[url].max_retries + 1} tries)") from None
        except openai.APIResponseValidationError as e:
            raise DataError(f"{url}/{what}: the answer is not an OpenAI-shaped response ({e})") from None

    def _model_id(self, url: str) -> str:
        data = self._call(url, "models", lambda: self.clients[url].models.list().data)
        if len(data) != 1:
            raise DataError(f"{url}/models: expected exactly one served model, got {len(data)}")
        return str(data[0].id)

    def prompt_logprobs(self, ep: Endpoint, ids: list[int]) -> list:
        client = self.clients[ep.url]
        ans = self._call(ep.url, "completions", lambda: client.completions.create(
            model=ep.model, prompt=ids, max_tokens=1, temperature=0.0, extra_body={"prompt_logprobs": self.k}))
        url = f"{ep.url}/completions"
        choice = ans.choices[0] if getattr(ans, "choices", None) else None
        plp = (choice.model_extra or {}).get("prompt_logprobs") if choice is not None else None
        if plp is None:
            raise DataError(f"{url}: the answer has no choices[0].prompt_logprobs (does the server support "
                            "vLLM's prompt_logprobs?)")
        if not isinstance(plp, list) or len(plp) != len(ids):
            raise DataError(f"{url}: prompt_logprobs has {len(plp) if isinstance(plp, list) else 'no'} entries for "
                            f"a {len(ids)}-token prompt")
        return plp

    # ---------------------------------------------------------------------------------------------- scoring
    def _top(self, entry: dict | None, url: str) -> tuple[np.ndarray, np.ndarray]:
        """The k best (ids, probabilities) of one position's entry, by rank."""
        if not entry:
            raise DataError(f"{url}: a scored position has no prompt_logprobs entry")
        rows = []
        for tok, v in entry.items():
            rank = v.get("rank") if isinstance(v, dict) else None
            if rank is None or rank <= self.k:
                lp = v["logprob"] if isinstance(v, dict) else float(v)
                rows.append((rank if rank is not None else 0, int(tok), float(lp)))
        rows.sort(key=lambda r: (r[0], -r[2]))
        rows = rows[: self.k]
        return np.array([r[1] for r in rows], np.int64), np.exp(np.array([r[2] for r in rows], np.float64))

    def _score_one(self, ex: Example) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ids = [int(t) for t in ex.input_ids]
        positions = np.nonzero(np.asarray(ex.target_mask)[1:])[0]  # row t predicts token t + 1
        answers = [(ep, self.prompt_logprobs(ep, ids)) for ep in self.endpoints]
        out_ids = np.zeros((len(positions), self.k), np.int64)
        out_lps = np.full((len(positions), self.k), -np.inf, np.float32)
        for row, t in enumerate(positions):
            mix: dict[int, float] = {}
            for ep, plp in answers:
                top_ids, probs = self._top(plp[t + 1], ep.url)
                for tok, p in zip(top_ids.tolist(), probs.tolist()):
                    mix[tok] = mix.get(tok, 0.0) + ep.weight * p
            best = sorted(mix.items(), key=lambda kv: -kv[1])[: self.k]
            for j, (tok, p) in enumerate(best):
                out_ids[row, j] = tok
                out_lps[row, j] = np.log(p) if p > 0 else -np.inf
        tails = tail_logmass(out_lps).astype(np.float32)
        return out_ids, out_lps, tails, np.zeros((len(positions), 0), np.float32)

    def score(self, examples: list[Example]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        if self.concurrency <= 1:
            return [self._score_one(ex) for ex in examples]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._score_one, examples))
