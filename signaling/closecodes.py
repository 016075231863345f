"""WebSocket close codes used by the server (documented in docs/signaling.md)."""

NORMAL = 1000
GOING_AWAY = 1001  # server shutting down
UNSUPPORTED_DATA = 1003  # binary frame
POLICY_VIOLATION = 1008  # a connection refused on policy
MESSAGE_TOO_BIG = 1009
TRY_AGAIN_LATER = 1013  # connection limit reached
IDLE_TIMEOUT = 4000
TOKEN_INVALID = 4001
TOKEN_EXPIRED = 4002
ORIGIN_FORBIDDEN = 4003  # Origin not in the allowlist (after accept, so browsers see the code)
SLOW_CONSUMER = 4008  # outgoing queue overflowed
RATE_LIMITED = 4029
WRITE_TIMEOUT = 4009  # pending writes made no progress for write_timeout_s
