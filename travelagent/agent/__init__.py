"""TravelAgent: the Durable Object stand-in, its SQLite store, LLM backends and agent host.

Entry points (import the submodule; this package imports nothing, so the CLI stays light):
``directory.LocalAgentDirectory``, ``remote.RemoteAgentDirectory``, ``llm.make_llm``,
``llm.list_profiles``, ``host.create_app``, ``cli`` (``travelagent serve agents``). The contracts
are in ``base``; docs/agent.md and docs/llm-profiles.md explain the semantics and the numbers.
"""
