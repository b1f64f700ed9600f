import { invalidArgument } from './errors';

/**
 * containerd's filter syntax (github.com/containerd/containerd/filters):
 * `field`, `field==value`, `field!=value`, `field~=regexp`, dotted field paths
 * with quoted components (`labels."a.b/c"`), quoted values ("…", `…` or /…/),
 * comma for AND inside one filter, several filters ORed.
 */

type Operator = 'present' | '==' | '!=' | '~=';

interface Selector {
  fieldpath: string[];
  operator: Operator;
  value: string;
  regexp?: RegExp;
}

/** Returns the value of a field path and whether it is present. */
export type FieldAdaptor = (fieldpath: string[]) => string | undefined;

export interface Filter {
  match(adaptor: FieldAdaptor): boolean;
}

const ALWAYS: Filter = { match: () => true };

export function parseFilters(filters: string[]): Filter {
  const parsed = filters.filter((f) => f.trim() !== '').map(parseFilter);
  if (parsed.length === 0) return ALWAYS;
  return { match: (adaptor) => parsed.some((conjunction) => conjunction.every((s) => matches(s, adaptor))) };
}

function matches(selector: Selector, adaptor: FieldAdaptor): boolean {
  const value = adaptor(selector.fieldpath);
  switch (selector.operator) {
    case 'present':
      return value !== undefined;
    case '==':
      return value !== undefined && value === selector.value;
    case '!=':
      return value !== selector.value;
    case '~=':
      return selector.regexp!.test(value ?? '');
  }
}

class Parser {
  private pos = 0;
  constructor(private readonly input: string) {}

  fail(message: string, at = this.pos): never {
    throw invalidArgument(`filters: parse error: [${this.input} >|${this.input.slice(at)}|<]: ${message} at position ${at}`);
  }

  private skipSpace(): void {
    while (this.pos < this.input.length && /\s/.test(this.input[this.pos]!)) this.pos++;
  }

  private peek(): string | undefined {
    return this.input[this.pos];
  }

  parse(): Selector[] {
    const selectors: Selector[] = [];
    for (;;) {
      selectors.push(this.selector());
      this.skipSpace();
      if (this.pos >= this.input.length) return selectors;
      if (this.peek() !== ',') this.fail(`expected ',' or end of input, found ${JSON.stringify(this.peek())}`);
      this.pos++;
    }
  }

  private selector(): Selector {
    const fieldpath = this.fieldpath();
    this.skipSpace();
    const two = this.input.slice(this.pos, this.pos + 2);
    if (two === '==' || two === '!=' || two === '~=') {
      this.pos += 2;
      this.skipSpace();
      const valueStart = this.pos;
      const value = this.value();
      const selector: Selector = { fieldpath, operator: two, value };
      if (two === '~=') {
        try {
          selector.regexp = new RegExp(value);
        } catch (e) {
          this.fail(`invalid regular expression: ${(e as Error).message}`, valueStart);
        }
      }
      return selector;
    }
    if (this.pos < this.input.length && this.peek() !== ',') this.fail(`expected operator, found ${JSON.stringify(this.peek())}`);
    return { fieldpath, operator: 'present', value: '' };
  }

  private fieldpath(): string[] {
    const path = [this.field()];
    while (this.peek() === '.') {
      this.pos++;
      path.push(this.field());
    }
    return path;
  }

  private field(): string {
    this.skipSpace();
    const c = this.peek();
    if (c === '"' || c === '`') return this.quoted();
    const start = this.pos;
    while (this.pos < this.input.length && /[A-Za-z0-9_\-/]/.test(this.input[this.pos]!)) this.pos++;
    if (this.pos === start) this.fail(c === undefined ? 'expected field, found end of input' : `expected field, found ${JSON.stringify(c)}`);
    return this.input.slice(start, this.pos);
  }

  private value(): string {
    const c = this.peek();
    if (c === '"' || c === '`' || c === '/') return this.quoted();
    const start = this.pos;
    while (this.pos < this.input.length && this.input[this.pos] !== ',') this.pos++;
    const value = this.input.slice(start, this.pos).trim();
    if (value === '') this.fail('expected value');
    return value;
  }

  private quoted(): string {
    const quote = this.input[this.pos]!;
    const start = this.pos++;
    let out = '';
    while (this.pos < this.input.length) {
      const c = this.input[this.pos++]!;
      if (c === quote) return out;
      if (c === '\\' && quote !== '`' && this.pos < this.input.length) {
        const next = this.input[this.pos++]!;
        // Inside /regexp/ escapes belong to the regexp, except an escaped slash.
        if (quote === '/') out += next === '/' ? '/' : `\\${next}`;
        else out += ({ n: '\n', t: '\t', r: '\r' } as Record<string, string>)[next] ?? next;
        continue;
      }
      out += c;
    }
    return this.fail('unterminated quoted string', start);
  }
}

function parseFilter(input: string): Selector[] {
  return new Parser(input).parse();
}

/** Field adaptor for content info, as containerd's content store exposes it. */
export function infoAdaptor(info: { digest: string; size: number; labels: Record<string, string> }): FieldAdaptor {
  return (path) => {
    if (path.length === 0) return undefined;
    switch (path[0]) {
      case 'digest':
        return info.digest;
      case 'size':
        return String(info.size);
      case 'labels':
        return path.length > 1 ? info.labels[path.slice(1).join('.')] : undefined;
      default:
        return undefined;
    }
  };
}

export function statusAdaptor(status: { ref: string; expected: string }): FieldAdaptor {
  return (path) => {
    switch (path[0]) {
      case 'ref':
        return status.ref;
      case 'expected':
        return status.expected || undefined;
      default:
        return undefined;
    }
  };
}
