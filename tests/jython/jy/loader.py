"""Loads the Ignition project library (ignition-scripts/ignition/script-python) into Jython the
way Ignition does: each folder with code.py is a module named by its path, folders are packages,
and top-level library names plus `system` are visible from every module (test harness, Jython)."""
import imp
import os
import sys
import __builtin__


def load_library(root, system):
    __builtin__.system = system
    tops = {}
    modules = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if 'code.py' in filenames:
            rel = os.path.relpath(dirpath, root).replace(os.sep, '.')
            modules.append((rel, os.path.join(dirpath, 'code.py')))
    # Create the namespace first (Ignition resolves names lazily, at call time).
    created = {}
    for name, path in modules:
        parts = name.split('.')
        parent = None
        for i in range(1, len(parts) + 1):
            sub = '.'.join(parts[:i])
            if sub not in created:
                obj = imp.new_module(sub)
                if i < len(parts):
                    obj.__path__ = []  # a package: lets absolute imports inside modules resolve
                sys.modules[sub] = obj
                created[sub] = obj
                if parent is None:
                    tops[sub] = obj
                    setattr(__builtin__, sub, obj)
                else:
                    setattr(parent, parts[i - 1], obj)
            parent = created[sub]
    for name, path in modules:
        exec_module(created[name], path)
    return created


def exec_module(mod, path):
    """(Re-)executes a library module in place, as Ignition does on a project save."""
    f = open(path)
    try:
        src = f.read()
    finally:
        f.close()
    code = compile(src, path, 'exec')
    d = mod.__dict__
    d['__file__'] = path
    exec code in d
    return mod
