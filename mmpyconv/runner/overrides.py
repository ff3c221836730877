"""``--cfg-options`` without silent surprises.

An OpenMMLab config is Python: a top-level variable (``data_root``, ``max_epochs``,
``num_classes``) is substituted into the keys that use it when the file is read, so setting the
variable afterwards changes nothing else. :func:`apply_cfg_options` therefore reads the config
again with the variable's assignment replaced by the new value (every file of the ``_base_``
chain that assigns it), which is what editing the file would do: every key computed from the
variable follows, ``T_max=max_epochs - 1`` included, and the keys that changed are logged. Where
that cannot be done (a config in the ``read_base()`` style), the override is refused with the
keys that still hold the old value and the ``--cfg-options`` that set them.

Setting one such key (``train_cfg.max_epochs=4``) changes that key only; when the config's
variable of the same name fed other keys too, a warning names them and the variable to set
instead. A value whose type differs from the config's (``train_cfg.max_epochs=abc`` for an int)
is refused: the tools check all of this before anything is written.
"""
import ast
import contextlib
import logging
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from .errors import UsageError, close_match

__all__ = ['check_override_key', 'check_override_types', 'apply_cfg_options', 'format_value']

# How many keys a message names before "and N more".
SHOWN = 8
_MISSING = object()


def check_override_key(cfg: Config, dotted: str) -> None:
    """Refuse an override whose key is absent but close to an existing one (a typo); new keys
    (``model.backbone.frozen_stages``) are allowed."""
    node: Any = cfg
    walked = []
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit():
            if int(part) >= len(node):
                raise UsageError(f'--cfg-options {dotted}: {".".join(walked)} has only '
                                 f'{len(node)} entries')
            node = node[int(part)]
        elif isinstance(node, (dict, Config)):
            if part not in node:
                meant = close_match(part, node.keys()) if len(part) >= 4 else None
                if meant:
                    where = '.'.join(walked) or 'the config'
                    raise UsageError(f'--cfg-options {dotted}: {where} has no key {part!r} '
                                     f"(did you mean '{meant}'?)")
                return
            node = node[part]
        else:
            return
        walked.append(part)


def _get(cfg: Any, dotted: str) -> Any:
    """The value at a dotted key (list entries by index), or ``_MISSING``."""
    node = cfg
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, (dict, Config)) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> Optional[str]:
    """What a config value must stay, when a string cannot stand for it: 'a number',
    'True or False', 'a list of numbers'; None when anything may replace it."""
    if isinstance(value, bool):
        return 'True or False'
    if _is_number(value):
        return 'a number'
    if isinstance(value, (list, tuple)) and value and all(_is_number(v) for v in value):
        return 'a list of numbers'
    return None


def format_value(value: Any) -> str:
    """A value as it is written on the command line."""
    if isinstance(value, (list, tuple)):
        inner = ','.join(format_value(v) for v in value)
        return f'({inner},)' if isinstance(value, tuple) and len(value) == 1 else \
            f'({inner})' if isinstance(value, tuple) else f'[{inner}]'
    return str(value)


def check_override_types(cfg: Config, options: Dict[str, Any]) -> None:
    """Refuse a string where the config holds a number, a bool or a list of numbers
    (``train_cfg.max_epochs=abc``): the override parser turns what reads as a number into one,
    so a string there is a typo that would otherwise fail once the run has started."""
    for key, value in options.items():
        old = _get(cfg, key)
        if old is _MISSING or not isinstance(value, str):
            continue
        kind = _kind(old)
        if kind:
            example = f'{key}={format_value(old)}'
            raise UsageError(f'--cfg-options {key}={value}: {key} is {kind} in the config '
                             f'({example}); give one, e.g. {example}')


def _leaves(node: Any, prefix: str = '') -> Iterator[Tuple[str, Any]]:
    """(dotted key, value) of every leaf of a config (dicts by key, lists by index)."""
    if isinstance(node, (dict, Config)):
        for key, value in node.items():
            yield from _leaves(value, f'{prefix}{key}.')
    elif isinstance(node, (list, tuple)) and node and any(
            isinstance(v, (dict, list, tuple)) for v in node):
        for i, value in enumerate(node):
            yield from _leaves(value, f'{prefix}{i}.')
    else:
        yield prefix[:-1], node


def _changed(old: Any, new: Any) -> List[str]:
    """The dotted keys whose values differ between two configs."""
    before, after = dict(_leaves(old)), dict(_leaves(new))
    return sorted(k for k in before.keys() | after.keys()
                  if before.get(k, _MISSING) != after.get(k, _MISSING))


def _listing(keys: List[str]) -> str:
    shown = ', '.join(keys[:SHOWN])
    return shown if len(keys) <= SHOWN else f'{shown} and {len(keys) - SHOWN} more'


def _literal(name: str, value: Any) -> ast.expr:
    """An override value as the expression that replaces a variable's assignment."""
    try:
        node = ast.parse(repr(value), mode='eval').body
        if ast.literal_eval(node) == value:
            return node
    except (SyntaxError, ValueError):
        pass
    raise UsageError(f'--cfg-options {name}={value!r}: the config uses {name} when it is read, '
                     'and this value cannot be written into it; give a number, a string, or a '
                     'list of them')


@contextlib.contextmanager
def _assigning(values: Dict[str, Any]) -> Iterator[None]:
    """While reading a config, every top-level ``name = ...`` of ``values`` assigns the given
    value instead (mmengine parses each file of the chain, then runs
    ``RemoveAssignFromAST(BASE_KEY).visit`` on it; this adds to that transformer)."""
    import mmengine.config.config as config_module
    original = config_module.RemoveAssignFromAST
    expressions = {name: _literal(name, value) for name, value in values.items()}

    class AssignOverrides(original):

        def visit_Assign(self, node):
            node = super().visit_Assign(node)
            if node is not None and len(node.targets) == 1 and isinstance(
                    node.targets[0], ast.Name) and node.targets[0].id in expressions:
                node.value = ast.copy_location(expressions[node.targets[0].id], node.value)
                ast.fix_missing_locations(node)
            return node

        def visit_AnnAssign(self, node):
            if isinstance(node.target, ast.Name) and node.target.id in expressions and \
                    node.value is not None:
                node.value = ast.copy_location(expressions[node.target.id], node.value)
                ast.fix_missing_locations(node)
            return node

        def visit_FunctionDef(self, node):
            return node  # a function's own variables are not the config's

    config_module.RemoveAssignFromAST = AssignOverrides
    try:
        yield
    finally:
        config_module.RemoveAssignFromAST = original


def _reread(path: str, values: Dict[str, Any]) -> Optional[Config]:
    """The config read with its variables ``values`` assigned; None where the reader does not
    take the assignment (a lazy-import config)."""
    if Config._is_lazy_import(path):
        return None
    with _assigning(values):
        try:
            cfg = Config.fromfile(path)
        except Exception as e:  # noqa: BLE001 -- the config's own code failed on the value
            names = ', '.join(f'{k}={format_value(v)}' for k, v in values.items())
            cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f'--cfg-options {names}: the config computes other keys from '
                             f'{"it" if len(values) == 1 else "them"} when it is read, and '
                             f'that fails with this value ({type(e).__name__}: {cause}); give '
                             'a value of the type the config has') from e
    if any(cfg.get(k, _MISSING) != v for k, v in values.items()):
        return None
    return cfg


def _holding(cfg: Config, name: str, old: Any) -> List[str]:
    """The keys besides ``name`` that hold the variable's value (or, for a string, start with
    it, as paths joined to a data root do)."""
    found = []
    for key, value in _leaves(cfg):
        if key == name or isinstance(value, bool) != isinstance(old, bool):
            continue
        if value == old and type(value) is type(old) or (
                isinstance(old, str) and old and isinstance(value, str)
                and value.startswith(old)):
            found.append(key)
    return found


def _refuse_variable(cfg: Config, name: str, value: Any) -> None:
    """Where the config cannot be read again: refuse a variable override that other keys
    hold the old value of, naming them and the overrides that set them."""
    old = cfg[name]
    keys = _holding(cfg, name, old)
    if not keys:
        return
    fixes = []
    for key in keys:
        held = _get(cfg, key)
        new = value if held == old else str(value) + held[len(old):]
        fixes.append(f'{key}={format_value(new)}')
    raise UsageError(
        f'--cfg-options {name}={format_value(value)}: the config substituted {name} '
        f'({format_value(old)}) into other keys when it was read, which would keep the old value: '
        f'{_listing(keys)}. Set them instead: --cfg-options {" ".join(fixes)}')


def _warn_partial(original: Config, reread: Config, key: str, name: str,
                  options: Dict[str, Any]) -> None:
    """Warn when an override sets one key that the config's variable ``name`` fed along with
    others, which keep the old value."""
    others = [k for k in _changed(original, reread)
              if k != name and k != key and k not in options]
    if not others:
        return
    print_log(
        f'--cfg-options {key}={format_value(options[key])} sets only that key, but the config\'s '
        f'variable {name} ({format_value(original[name])}) also set {_listing(others)}, which keep '
        f'the old value; to change them all, use --cfg-options {name}={format_value(options[key])}',
        logger='current', level=logging.WARNING)


def apply_cfg_options(cfg: Config, path: str, options: Dict[str, Any]) -> Config:
    """The config with ``options`` (``--cfg-options``) applied; see the module docstring.

    Returns the config to use: ``cfg`` itself, or the config read again with the variables the
    options set.
    """
    for key in options:
        check_override_key(cfg, key)
    check_override_types(cfg, options)
    variables = {k: v for k, v in options.items()
                 if '.' not in k and k in cfg and not isinstance(cfg[k], dict)}
    if variables:
        reread = _reread(path, variables)
        if reread is None:
            for name, value in variables.items():
                _refuse_variable(cfg, name, value)
        else:
            changed = [k for k in _changed(cfg, reread) if k not in variables]
            if changed:
                names = ', '.join(variables)
                print_log(f'--cfg-options {names}: the config was read again with the new '
                          f'value, which also set {_listing(changed)}', logger='current')
            cfg = reread
    for key, value in options.items():
        name = key.rsplit('.', 1)[-1]
        if '.' in key and name in cfg and name not in options and \
                not isinstance(cfg[name], dict) and _get(cfg, key) == cfg[name]:
            try:
                reread = _reread(path, {**variables, name: value})
            except UsageError:
                continue  # a value the variable cannot take: the key alone is set
            if reread is not None:
                _warn_partial(cfg, reread, key, name, options)
    cfg.merge_from_dict(options)
    return cfg
