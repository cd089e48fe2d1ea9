"""Access control: who a request comes from, and what each principal may send."""
