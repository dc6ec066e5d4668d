"""The course's instructor tool: release, collect, grade, feedback, export (python -m autograder)."""

import sys

# nbformat validates notebooks with jsonschema, which imports the optional `rfc3987_syntax`
# package (when installed) only to check the "iri" string format — a format no notebook schema
# uses. Building that package's grammar costs ~0.75 s at every start of every grading process,
# so it is marked absent here (jsonschema then skips that one format check).
sys.modules.setdefault("rfc3987_syntax", None)
