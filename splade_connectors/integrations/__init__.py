"""Bridges to RAG frameworks, one module per framework, each imported only when used (its own install extra).

- `splade_connectors.integrations.langchain` (`pip install "splade-connectors[langchain]"`): SPLADE sparse
  embeddings for `langchain_qdrant.QdrantVectorStore`, and a LangChain retriever over any `SparseStore`.
"""
