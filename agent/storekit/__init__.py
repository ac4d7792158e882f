"""What every store folder shares: the capability contracts, the HTTP helpers, the prestart base."""
