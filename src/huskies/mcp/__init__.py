"""The MCP server agents and people's assistants drive huskies with (official SDK, `/mcp`).

Absolute imports only: `import mcp` must reach the SDK, never this package.
"""
