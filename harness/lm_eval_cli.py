"""lm-eval's own command line with the `bench` model registered (lm-eval 0.4 has no plugin hook).

    python -m harness.lm_eval_cli --model bench --model_args run=<run_id>,results_dir=results \\
        --include_path suites/lm/tasks --tasks shakespeare_next_line shakespeare_bpb

Every argument is lm-eval's (`lm_eval --help`); this only imports harness.lm_eval_bridge,
whose `@register_model("bench")` puts the model in lm-eval's registry, and then hands over to
`lm_eval.__main__.cli_evaluate`. Installed as the `bench-lm-eval` script.
"""

from __future__ import annotations


def main() -> None:
    import harness.lm_eval_bridge  # noqa: F401  (registers `bench`)
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
