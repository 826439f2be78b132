#!/usr/bin/env python3
"""The code-shape figures of issue 19: package lines, longest functions, largest classes, public names.

Usage: python3 .ci/code_metrics.py [PACKAGE_DIR]   (default: flexlogger)
Import cycles: python3 ../shared/tools/import_cycles.py flexlogger; repeated blocks: duplicates --most 40.
"""
import ast
import os
import sys


def main(pkg: str = "flexlogger") -> None:
    total, funcs, classes = 0, [], []
    for dirpath, _, files in os.walk(pkg):
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            text = open(path, encoding="utf-8").read()
            total += len(text.splitlines())
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    funcs.append((node.end_lineno - node.lineno + 1, f"{path}:{node.lineno} {node.name}"))
                elif isinstance(node, ast.ClassDef):
                    classes.append((node.end_lineno - node.lineno + 1, f"{path}:{node.lineno} {node.name}"))
    import importlib
    sys.path.insert(0, os.path.dirname(os.path.abspath(pkg)) or ".")
    mod = importlib.import_module(os.path.basename(pkg))
    print(f"package lines: {total} in {sum(1 for _ in _modules(pkg))} modules")
    print(f"public names (__all__): {len(getattr(mod, '__all__', []))}")
    print("15 longest functions:")
    for n, where in sorted(funcs, reverse=True)[:15]:
        print(f"  {n:4d}  {where}")
    print("5 largest classes:")
    for n, where in sorted(classes, reverse=True)[:5]:
        print(f"  {n:4d}  {where}")


def _modules(pkg: str):
    for dirpath, _, files in os.walk(pkg):
        yield from (f for f in files if f.endswith(".py"))


if __name__ == "__main__":
    main(*sys.argv[1:])
