"""nanoGPT-style configuration: UPPER_CASE constants at the top of a script are the config.

    python train.py config/demo_cpu.py --BATCH_SIZE=8 --LR=3e-4

Arguments are applied in order: a path ending in .py is a preset file (executed, its UPPER_CASE
names taken), `--NAME=value` overrides one name. Every name must already exist in the script
with a default, and the new value must have the default's type (an int is accepted for a
float); anything else is a ConfigError naming the argument and the problem.
"""
import ast
import os

_SIMPLE = (bool, int, float, str, tuple, list, dict, type(None))


class ConfigError(ValueError):
    pass


def config_keys(g):
    """The tunable names of a script's globals: UPPER_CASE and of a plain type."""
    return sorted(k for k, v in g.items() if k.isupper() and not k.startswith('_') and isinstance(v, _SIMPLE))


def _coerce(name, new, default, where):
    """Return `new` converted to the type of `default`, or raise ConfigError."""
    if default is None or new is None:
        return new
    if isinstance(default, bool):
        if isinstance(new, bool):
            return new
    elif isinstance(default, float):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
    elif isinstance(default, int):
        if isinstance(new, int) and not isinstance(new, bool):
            return new
    elif isinstance(default, (tuple, list)):
        if isinstance(new, (tuple, list)):
            return type(default)(new)
    elif isinstance(new, type(default)):
        return new
    raise ConfigError(f"{where}: {name} expects {type(default).__name__} (default {default!r}), "
                      f"got {type(new).__name__} {new!r}")


def _parse_value(text, default):
    """Parse a command-line value: a Python literal, or a bare string where the default is a str."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if isinstance(default, str) or default is None:
            return text
        raise ConfigError(f"cannot parse {text!r} as a {type(default).__name__}")


def apply_config(g, argv):
    """Apply preset files and --NAME=value overrides in `argv` to the globals dict `g`.

    Returns the resolved config: a dict of every tunable name to its final value.
    """
    keys = set(config_keys(g))
    for arg in argv:
        if not arg.startswith('--'):
            if not arg.endswith('.py'):
                raise ConfigError(f"{arg}: expected a preset file (config/*.py) or --NAME=value")
            if not os.path.isfile(arg):
                raise ConfigError(f"{arg}: preset file not found")
            scope = {}
            with open(arg) as f:
                exec(compile(f.read(), arg, 'exec'), scope)
            for name, value in scope.items():
                if not name.isupper() or name.startswith('_'):
                    continue
                if name not in keys:
                    raise ConfigError(f"{arg}: unknown config key {name} (known: {', '.join(sorted(keys))})")
                g[name] = _coerce(name, value, g[name], arg)
        else:
            if '=' not in arg:
                raise ConfigError(f"{arg}: expected --NAME=value")
            name, text = arg[2:].split('=', 1)
            if name not in keys:
                raise ConfigError(f"{arg}: unknown config key {name} (known: {', '.join(sorted(keys))})")
            try:
                value = _parse_value(text, g[name])
            except ConfigError as e:
                raise ConfigError(f"{arg}: {e}") from None
            g[name] = _coerce(name, value, g[name], arg)
    return {k: g[k] for k in sorted(keys)}


def format_config(cfg):
    width = max((len(k) for k in cfg), default=0)
    return '\n'.join(f"{k:<{width}} = {v!r}" for k, v in cfg.items())


def script_defaults(path):
    """The UPPER_CASE literal constants a script assigns at top level, read without running it.

    Lets tools (bench.py, tests) resolve a script's config with a preset exactly as the script
    would, without the script's side effects: apply_config(script_defaults('train.py'), [preset]).
    """
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if isinstance(target, ast.Name) and target.id.isupper():
                out[target.id] = value
            elif isinstance(target, ast.Tuple) and isinstance(value, tuple) and len(value) == len(target.elts):
                out.update({t.id: v for t, v in zip(target.elts, value) if isinstance(t, ast.Name) and t.id.isupper()})
    return out
