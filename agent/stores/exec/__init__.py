"""Any store through hooks run in the pod (the RSS operator's contract)."""
