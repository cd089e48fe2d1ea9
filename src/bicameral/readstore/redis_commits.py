"""The commit notices of a Redis read store: one subscription per process.

The commit script publishes each moved checkpoint's name on channel ``{prefix}:checkpoints``
(the name of the checkpoint hash), in the same script as the commit, so every process
subscribed hears of it once it is done.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bicameral.commits import Commits, Watcher
from bicameral.errors import BackendError

__all__ = ["redis_watcher"]


def redis_watcher(url: str, prefix: str) -> Watcher:
    """Returns the watcher publishing the checkpoints committed under ``prefix`` at ``url``."""
    channel = f"{prefix}:checkpoints"

    async def watch(commits: Commits) -> None:
        client = aioredis.Redis.from_url(url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            commits.connected()
            async for message in pubsub.listen():
                data = message.get("data")
                if isinstance(data, bytes):
                    commits.publish((data.decode(),))
        except RedisError as exc:
            raise BackendError(f"listening for read store commits: {exc}") from exc
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
        raise BackendError("the read store's subscription ended")

    return watch
