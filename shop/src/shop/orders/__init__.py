"""The orders service: customers' orders, and the process that confirms or rejects them."""
