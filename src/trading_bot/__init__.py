"""A trading bot whose phase ladder decides when real money and larger sizes are allowed."""

__version__ = "0.1.0"
