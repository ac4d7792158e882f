"""A node of a Kubernetes cluster played on this host, under the real control plane."""
