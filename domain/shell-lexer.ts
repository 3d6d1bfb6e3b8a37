/** A small shell lexer: a command line as the simple commands it runs, for shell-analysis.ts. */

export interface SimpleCommand {
  words: string[];
  /** Targets of output redirections (>, >>, >|, &>). */
  outputs: string[];
  /** Bodies of $(...), `...` and <(...) in this command. */
  substitutions: string[];
  /** The previous command of its pipeline. */
  pipedFrom: SimpleCommand | null;
  /** Reads a here-document or here-string (<<, <<<). */
  hereInput: boolean;
}

export function lexShell(text: string): SimpleCommand[] {
  const commands: SimpleCommand[] = [];
  const fresh = (pipedFrom: SimpleCommand | null): SimpleCommand => ({
    words: [],
    outputs: [],
    substitutions: [],
    pipedFrom,
    hereInput: false,
  });
  let cmd = fresh(null);
  let word: string | null = null;
  let redirect: 'in' | 'out' | null = null;
  let i = 0;

  const endWord = () => {
    if (word === null) return;
    if (redirect === 'out') cmd.outputs.push(word);
    else if (redirect === null) cmd.words.push(word);
    word = null;
    redirect = null;
  };
  const endCommand = (piped: boolean) => {
    endWord();
    redirect = null;
    const empty = !cmd.words.length && !cmd.outputs.length && !cmd.substitutions.length;
    if (!empty) commands.push(cmd);
    cmd = fresh(piped && !empty ? cmd : null);
  };
  /** The body of a construct opened just before `from`, closed by the matching `)`. */
  const balanced = (from: number): [string, number] => {
    let depth = 1;
    let j = from;
    for (; j < text.length && depth > 0; j++) {
      const c = text[j];
      if (c === '\\') j++;
      else if (c === "'") j = text.indexOf("'", j + 1) < 0 ? text.length : text.indexOf("'", j + 1);
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    }
    return [text.slice(from, depth === 0 ? j - 1 : j), j];
  };
  const backquoted = (from: number): [string, number] => {
    let j = from;
    while (j < text.length && text[j] !== '`') j += text[j] === '\\' ? 2 : 1;
    return [text.slice(from, j), j + 1];
  };
  const append = (s: string) => {
    word = (word ?? '') + s;
  };

  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else if (c === '\n' || c === ';' || c === '(' || c === ')') {
      endCommand(false);
      i++;
    } else if (c === '&') {
      if (next === '>') {
        endWord();
        redirect = 'out';
        i += text[i + 2] === '>' ? 3 : 2;
      } else {
        endCommand(false);
        i += next === '&' ? 2 : 1;
      }
    } else if (c === '|') {
      if (next === '|') {
        endCommand(false);
        i += 2;
      } else {
        endCommand(true);
        i += next === '&' ? 2 : 1;
      }
    } else if ((c === '{' || c === '}') && word === null) {
      endCommand(false);
      i++;
    } else if (c === '#' && word === null) {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? text.length : eol;
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1);
      append(text.slice(i + 1, close < 0 ? text.length : close));
      i = close < 0 ? text.length : close + 1;
    } else if (c === '"') {
      let j = i + 1;
      let part = '';
      while (j < text.length && text[j] !== '"') {
        const d = text[j]!;
        if (d === '\\' && j + 1 < text.length && '$`"\\\n'.includes(text[j + 1]!)) {
          part += text[j + 1];
          j += 2;
        } else if (d === '$' && text[j + 1] === '(') {
          const [body, end] = balanced(j + 2);
          cmd.substitutions.push(body);
          part += `$(${body})`;
          j = end;
        } else if (d === '`') {
          const [body, end] = backquoted(j + 1);
          cmd.substitutions.push(body);
          part += `\`${body}\``;
          j = end;
        } else {
          part += d;
          j++;
        }
      }
      append(part);
      i = j + 1;
    } else if (c === '\\') {
      if (next !== '\n' && next !== undefined) append(next);
      i += 2;
    } else if (c === '$' && next === '(') {
      const [body, end] = balanced(i + 2);
      cmd.substitutions.push(body);
      append(`$(${body})`);
      i = end;
    } else if (c === '$' && next === '{') {
      const close = text.indexOf('}', i);
      append(text.slice(i, close < 0 ? text.length : close + 1));
      i = close < 0 ? text.length : close + 1;
    } else if (c === '`') {
      const [body, end] = backquoted(i + 1);
      cmd.substitutions.push(body);
      append(`\`${body}\``);
      i = end;
    } else if ((c === '<' || c === '>') && next === '(') {
      const [body, end] = balanced(i + 2);
      cmd.substitutions.push(body);
      append(`${c}(${body})`);
      i = end;
    } else if (c === '<' || c === '>') {
      // A digit-only word right before is the file descriptor (2>), not an argument.
      if (word !== null && /^\d+$/.test(word)) word = null;
      endWord();
      redirect = c === '>' ? 'out' : 'in';
      if (c === '<' && next === '<') cmd.hereInput = true;
      i++;
      while (i < text.length && '<>&|'.includes(text[i]!)) i++;
      // >&2 and <&0 duplicate a descriptor: no file.
      const dup = /^\d+|^-/.exec(text.slice(i));
      if (text[i - 1] === '&' && dup) {
        i += dup[0].length;
        redirect = null;
      }
    } else {
      append(c);
      i++;
    }
  }
  endCommand(false);
  return commands;
}
