"""Configuration: the settings model, its value types, and loading with every problem named."""
