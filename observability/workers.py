"""Which django-q2 clusters are alive, from the heartbeat each cluster's guard writes every half second.

A cluster saves its Stat with a 3-second expiry: to Redis with the Redis
broker, else to the cache named by Q_CLUSTER["cache"]. For the web process to
see the workers' heartbeats with the ORM broker, that cache must be shared
between processes: settings name a file cache in the data folder for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django_q.conf import Conf
from django_q.status import Stat


@dataclass(frozen=True)
class Cluster:
    cluster_id: str
    host: str
    pid: int
    status: str
    workers: int
    uptime_seconds: float

    def as_dict(self) -> dict:
        return {
            "id": self.cluster_id,
            "host": self.host,
            "pid": self.pid,
            "status": self.status,
            "workers": self.workers,
            "uptime_seconds": round(self.uptime_seconds, 1),
        }


def clusters_seen() -> list[Cluster]:
    """The running clusters whose heartbeat has not expired. Empty when none runs, or the broker cannot be read."""
    try:
        stats = Stat.get_all()
    except Exception:  # A broker that is down means no worker can be seen, which the caller reports.
        return []
    return [
        Cluster(
            cluster_id=str(stat.cluster_id),
            host=stat.host,
            pid=stat.pid,
            status=str(stat.status),
            workers=len(stat.workers),
            uptime_seconds=stat.uptime() if stat.tob else 0.0,
        )
        for stat in stats
        # A cluster's last heartbeat says "Stopped" for its final 3 seconds.
        if str(stat.status) != str(Conf.STOPPED)
    ]
