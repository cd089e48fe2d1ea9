"""Connection helpers shared by several adapters of one backend (URL parsing, connecting,
translating driver errors), so each adapter module holds only its port's work; and the reading
of the SQL and Lua files the adapters ship beside them (``resources``)."""
