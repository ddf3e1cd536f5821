"""paradigm-bench: the machinery that trains, measures and compares learning paradigms."""
