"""Tasks: datasets and model builders, each task a class registered with `@register_task`.

The registry imports every public module of this package itself, so a new task is one
new module here and nothing else.
"""
