"""The classic stacks' state in Redis, through redis-py: one sorted set of heartbeats per room,
a capped list of messages per room with a sequence counter, one hash of counters per user.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from .app import HISTORY_KEPT


class RedisStore:
    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url)

    def close(self) -> None:
        self.redis.close()

    def heartbeat(self, user: str, room: str, now: int) -> None:
        self.redis.zadd(f"presence:{room}", {user: now})

    def who(self, room: str) -> list[tuple[str, int]]:
        rows = self.redis.zrevrange(f"presence:{room}", 0, -1, withscores=True)
        return [(user.decode(), int(score)) for user, score in rows]

    def post(self, room: str, user: str, text: str, now: int) -> int:
        seq = int(self.redis.incr(f"seq:{room}"))
        message = json.dumps({"seq": seq, "ts": now, "user": user, "text": text})
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(f"messages:{room}", message)
        pipe.ltrim(f"messages:{room}", -HISTORY_KEPT, -1)
        pipe.execute()
        return seq

    def history(self, room: str, limit: int) -> list[dict[str, Any]]:
        messages = [json.loads(m) for m in self.redis.lrange(f"messages:{room}", -limit, -1)]
        # Two posts may push in the other order than they counted: order by seq.
        return sorted(messages, key=lambda message: int(message["seq"]))

    def incr(self, user: str, key: str, by: int) -> int:
        return int(self.redis.hincrby(f"state:{user}", key, by))
