"""The payments service: customers' balances, charges and refunds."""
