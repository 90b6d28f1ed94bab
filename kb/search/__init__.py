"""Retrieval: tokenisation, the BM25 keyword index, fusion of vector and keyword results."""
