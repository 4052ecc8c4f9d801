"""The MCP server at ``/mcp``: the service's tools for agents, over streamable HTTP, in the same app.

``mount.py`` is what the app holds (it imports nothing of the SDK); ``server.py`` builds the
SDK's server on the first request; ``tools.py`` holds the tools, each one a REST operation's
logic; ``results.py`` turns answers and problems into tool results.
"""
