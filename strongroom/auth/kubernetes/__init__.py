"""The ``kubernetes`` auth method: a workload logs in with the ServiceAccount token Kubernetes already gave it."""
