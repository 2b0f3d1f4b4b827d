"""Read-only status: snapshot model, Prometheus metrics and the HTTP status server."""

from reactor.status.metrics import Metrics
from reactor.status.model import AccountStatus, PositionStatus, StatusSnapshot, StatusSource

__all__ = ["AccountStatus", "Metrics", "PositionStatus", "StatusSnapshot", "StatusSource"]
