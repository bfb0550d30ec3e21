"""Runs in a fresh interpreter (``python -I -S -c``) as the Lambda runtime would run the handler.

argv: the unpacked zip, the runtime's packages folder, the handler (``module.function``).
sys.path is those two folders and the standard library; one API Gateway event per line on
stdin, one JSON result per line on stdout, then one line with the file of every loaded module.
"""

import importlib
import json
import sys

task, runtime, handler_name = sys.argv[1:4]
sys.path[:0] = [task, runtime]
module_name, _, function_name = handler_name.rpartition(".")
handler = getattr(importlib.import_module(module_name), function_name)
for line in sys.stdin:
    print(json.dumps(handler(json.loads(line), None)), flush=True)
print(json.dumps({"loaded": sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})}))
