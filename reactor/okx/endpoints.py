"""OKX v5 venue facts in one place: base URLs, REST paths and their documented rate limits.

The client (``okx/rest.py``), the simulator's routes (``sim/``), the probe and the benchmarks
all read them from here, so a path or a limit is written once, with its source.
"""

from __future__ import annotations

__all__ = [
    "ACCOUNT_CONFIG",
    "ADJUST_LEVERAGE_INFO",
    "BALANCE",
    "BILLS",
    "CURRENCIES",
    "DEMO_REST_URL",
    "DEMO_WS_PRIVATE_URL",
    "INSTRUMENTS",
    "LIVE_REST_URL",
    "LIVE_WS_PRIVATE_URL",
    "MARGIN_BALANCE",
    "MAX_AVAIL_SIZE",
    "ORDER",
    "ORDERS_HISTORY",
    "ORDERS_PENDING",
    "POSITIONS",
    "POSITIONS_HISTORY",
    "RATE_LIMITS",
    "TIME",
    "WS_PRIVATE_PATH",
]

# Base URLs (docs/spec/okx-v5.md "Endpoints"): demo trading uses the live REST host with the header
# ``x-simulated-trading: 1``, and its own WebSocket host; demo API keys work on demo only.
LIVE_REST_URL = "https://www.okx.com"
LIVE_WS_PRIVATE_URL = "wss://ws.okx.com:8443/ws/v5/private"
DEMO_REST_URL = "https://www.okx.com"
DEMO_WS_PRIVATE_URL = "wss://wspap.okx.com:8443/ws/v5/private"
WS_PRIVATE_PATH = "/ws/v5/private"

# REST paths.
POSITIONS = "/api/v5/account/positions"
BALANCE = "/api/v5/account/balance"
MARGIN_BALANCE = "/api/v5/account/position/margin-balance"
ACCOUNT_CONFIG = "/api/v5/account/config"
ADJUST_LEVERAGE_INFO = "/api/v5/account/adjust-leverage-info"
BILLS = "/api/v5/account/bills"  # last 7 days
MAX_AVAIL_SIZE = "/api/v5/account/max-avail-size"
POSITIONS_HISTORY = "/api/v5/account/positions-history"
INSTRUMENTS = "/api/v5/public/instruments"
TIME = "/api/v5/public/time"
ORDER = "/api/v5/trade/order"
ORDERS_HISTORY = "/api/v5/trade/orders-history"  # last 7 days, completed orders
ORDERS_PENDING = "/api/v5/trade/orders-pending"  # live and partially filled orders
CURRENCIES = "/api/v5/asset/currencies"

# OKX's documented limits: (requests, window seconds). Private ones count per sub-account
# (User ID); the client waits for them, the simulator enforces them with 50011.
RATE_LIMITS: dict[str, tuple[int, float]] = {
    # DOC-TA (docs/spec/okx-v5.md "Confirmed"): positions and balance 10 / 2 s,
    # margin-balance 20 / 2 s.
    POSITIONS: (10, 2.0),
    BALANCE: (10, 2.0),
    MARGIN_BALANCE: (20, 2.0),
    INSTRUMENTS: (20, 2.0),
    TIME: (10, 2.0),
    # OKX docs (Trade: Get order history (last 7 days), Get order list; Account: Get bills
    # details (last 7 days)), per User ID; the same numbers as ccxt 4.5.90 okx.py's costs
    # (1/2, 1/3 and 2 at 10 requests/s: 40/2 s, 60/2 s, 5/s).
    ORDERS_HISTORY: (40, 2.0),
    ORDERS_PENDING: (60, 2.0),
    # DOC-TA "Get leverage estimated info": 5 / 2 s; "Get bills details (last 7 days)": 5 / 1 s.
    ADJUST_LEVERAGE_INFO: (5, 2.0),
    BILLS: (5, 1.0),
    # DOC-TA "Get account configuration": 5 requests per 2 seconds per User ID.
    ACCOUNT_CONFIG: (5, 2.0),
    # DOC (Funding: Get currencies): 6 requests per second per User ID.
    CURRENCIES: (6, 1.0),
    # The simulator's trade and account routes (sim/trade_endpoints.py), as it has enforced
    # them: place/get order 60 / 2 s, max-avail-size 20 / 2 s, positions-history 10 / 2 s.
    ORDER: (60, 2.0),
    MAX_AVAIL_SIZE: (20, 2.0),
    POSITIONS_HISTORY: (10, 2.0),
}
