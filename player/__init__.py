"""Local stand-ins for a Kubernetes cluster's parts: DNS now, the StatefulSet player later."""
