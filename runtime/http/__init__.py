"""The HTTP side: the app factory, the routes (native, OpenAI-compatible, ops), request bodies, server-sent
events, middleware, and the task's lifecycle (drain, scale-in protection, load reports)."""
