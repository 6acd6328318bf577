"""Who is calling: API keys (optional), and the client every image, prefix and queue place belongs to.

With keys configured, a request names its key as ``Authorization: Bearer <key>``; a browser's WebSocket,
which can't set headers, offers it as a subprotocol ``bearer.<key>`` beside ``imagesense`` (never in the
URL, which lands in logs). Keys are compared by their SHA-256 digests in constant time, all of them on
every request. Without keys the client is its network address: one person on their own machine.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from imagesense.errors import Unauthorized
from imagesense.settings import Settings

SUBPROTOCOL = "imagesense"
BEARER_PREFIX = "bearer."


@dataclass(frozen=True)
class Client:
    owner: str  # "key:<name>", or "addr:<host>" without keys: what images, prefixes and queue places belong to
    authenticated: bool  # a key was checked (always False without keys)


class ApiKeys:
    def __init__(self, entries: list[str]) -> None:
        self._keys: list[tuple[str, bytes]] = []
        for number, entry in enumerate(entries, start=1):
            name, _, key = entry.partition(":") if ":" in entry else ("", "", entry)  # a name has no ":"
            if not key.strip():
                raise ValueError(f"API key {number} is empty")
            self._keys.append((name.strip() or f"key{number}", _digest(key.strip())))

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        entries = list(settings.api_keys)
        if settings.api_keys_file is not None:
            entries += _read_key_file(settings.api_keys_file)
        return cls(entries)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def name_of(self, presented: str) -> str | None:
        """The name of the key presented, or None. Every key is compared, in constant time each."""
        digest, found = _digest(presented), None
        for name, key in self._keys:
            if hmac.compare_digest(digest, key):
                found = name
        return found

    def client(self, presented: str | None, address: str, *, required: bool = True) -> Client | None:
        """The client for a request, raising 401 (or, if not ``required``, None) for a missing or wrong key."""
        if not self.enabled:
            return Client(owner=f"addr:{address}", authenticated=False)
        name = self.name_of(presented) if presented else None
        if name is not None:
            return Client(owner=f"key:{name}", authenticated=True)
        if not required:
            return None
        reason = "a wrong API key" if presented else "no API key"
        raise Unauthorized(f"{reason}: send Authorization: Bearer <key>", headers={"WWW-Authenticate": "Bearer"})


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _read_key_file(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def bearer_token(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def subprotocol_token(offered: str | None) -> str | None:
    """The key a WebSocket client offered as the subprotocol ``bearer.<key>``."""
    for protocol in (offered or "").split(","):
        if protocol.strip().startswith(BEARER_PREFIX):
            return protocol.strip()[len(BEARER_PREFIX) :]
    return None
