# qemubox metrics tests: a real Prometheus text-format parser (prometheus_client).
APT_PACKAGES+=(python3 python3-prometheus-client)
