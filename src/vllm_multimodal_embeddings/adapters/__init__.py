"""What the framework adapters (LangChain, LlamaIndex) share: their clients, bound to settings
and event loops."""
