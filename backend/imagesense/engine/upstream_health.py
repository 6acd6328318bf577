"""Whether a remote upstream answers, checked in the background so /ready can say so (with its URL)."""

from __future__ import annotations

import logging
import threading

import httpx

log = logging.getLogger(__name__)


class UpstreamHealth:
    def __init__(self, probe_url: str, headers: dict[str, str], timeout_s: float) -> None:
        self._probe_url = probe_url
        self._headers = headers
        self._timeout_s = timeout_s
        self._reason: str | None = f"not yet checked: {probe_url}"
        self._stop = threading.Event()

    @property
    def reason(self) -> str | None:
        """None while the upstream answers; otherwise what is wrong, naming the URL."""
        return self._reason

    def mark_down(self, reason: str) -> None:
        """A generation found it down: say so now rather than at the next check."""
        self._reason = reason

    def start(self, interval_s: float) -> None:
        self.check()
        thread = threading.Thread(target=self._run, args=(interval_s,), name="imagesense-upstream", daemon=True)
        thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.check()

    def check(self) -> None:
        try:
            response = httpx.get(self._probe_url, headers=self._headers, timeout=self._timeout_s)
        except httpx.HTTPError as error:
            reason: str | None = f"the upstream {self._probe_url} cannot be reached ({type(error).__name__})"
        else:
            ok = response.status_code == 200
            reason = None if ok else f"the upstream {self._probe_url} answers HTTP {response.status_code}"
        if reason != self._reason:
            log.warning("upstream: %s", reason or f"{self._probe_url} answers again")
        self._reason = reason
