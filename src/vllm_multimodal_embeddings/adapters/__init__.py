"""What the framework adapters (LangChain, LlamaIndex, Haystack) share: their clients, bound to
settings and event loops."""
