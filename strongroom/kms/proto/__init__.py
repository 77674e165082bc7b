"""The Kubernetes KMS v2 API (upstream ``api.proto``) and its generated Python stubs; see NOTICE."""
