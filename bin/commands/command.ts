/** What every CLI command is: its usage, its own options, and what it does. */
import type { ParseArgsConfig } from 'node:util';
import type { ApiClient } from './api-client.js';

export interface CommandContext {
  api: ApiClient;
  /** Print the API's JSON as it is instead of tables. */
  json: boolean;
  /** Positional arguments after the command's words. */
  args: string[];
  values: Record<string, string | boolean | undefined>;
}

export interface Command {
  usage: string;
  summary: string;
  options?: NonNullable<ParseArgsConfig['options']>;
  /** How many positional arguments it takes. */
  args?: number;
  /** The exit code (0 when it returns nothing). */
  run(ctx: CommandContext): Promise<number | void>;
}
