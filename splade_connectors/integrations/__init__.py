"""Integrations with RAG frameworks (LangChain, LlamaIndex, Haystack): each module imports its framework, so import the one you use."""
