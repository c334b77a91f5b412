"""CLI verbs: each module defines add_arguments(parser) and run(args); heavy imports happen inside run()."""
