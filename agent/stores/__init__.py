"""Everything store-specific: one folder a store, the contracts, the registry."""
