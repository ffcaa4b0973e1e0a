"""The dataset catalog (articles 6–8, 16, 20): entries, policies, versions, imports, dummy rows."""
