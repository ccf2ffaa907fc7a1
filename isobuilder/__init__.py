"""isobuild: per-node TLS, first-boot config and config-drive ISOs for Kubernetes clusters."""

__version__ = "0.1.0"
