"""The book's sources and the built HTML book (built-book tests need `make book`)."""
