"""Learning paradigms, one file each, registered with `@register_method("name")`.

Files starting with "_" (such as `_template.py`) are not registered.
"""
