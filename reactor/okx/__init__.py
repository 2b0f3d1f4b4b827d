"""OKX v5 venue adapter: signing, payload parsing, error codes, REST and WebSocket clients."""
