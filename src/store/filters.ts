import { invalidArgument } from './errors';

/**
 * containerd's filter syntax, ported from github.com/containerd/containerd/filters
 * (scanner.go, parser.go, quote.go) so that the same strings parse, match and
 * fail the same way:
 *
 *   selectors := selector ("," selector)*
 *   selector  := fieldpath (operator value)
 *   fieldpath := field ('.' field)*
 *   field     := quoted | [A-Za-z0-9_]+
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | [^\s,]+
 *
 * Quotes are "…"; a regexp value (~=) may also be quoted /…/ or |…|. Several
 * filters are ORed. One deliberate difference: containerd compiles a regexp
 * when matching and silently matches nothing if it is invalid; here an
 * invalid regexp is a parse error (InvalidArgument), like any malformed filter.
 */

/** Returns the value of a field path, or undefined when it is not present. */
export type FieldAdaptor = (fieldpath: string[]) => string | undefined;

export interface Filter {
  match(adaptor: FieldAdaptor): boolean;
}

type Operator = 'present' | '==' | '!=' | '~=';

interface Selector {
  fieldpath: string[];
  operator: Operator;
  value: string;
  regexp?: RegExp;
}

const ALWAYS: Filter = { match: () => true };

/** Parses several filters, ORed; an empty list (or only empty strings) matches everything. */
export function parseFilters(filters: string[]): Filter {
  const parsed = filters.filter((f) => f !== '').map((f) => new Parser(f).parse());
  // As in containerd, an empty filter matches everything, even next to others.
  if (parsed.length < filters.length || parsed.length === 0) return ALWAYS;
  return { match: (adaptor) => parsed.some((all) => all.every((s) => matches(s, adaptor))) };
}

function matches(selector: Selector, adaptor: FieldAdaptor): boolean {
  const value = adaptor(selector.fieldpath);
  switch (selector.operator) {
    case 'present':
      return value !== undefined;
    case '==':
      return value !== undefined && value === selector.value;
    case '!=':
      return (value ?? '') !== selector.value;
    case '~=':
      return selector.regexp!.test(value ?? '');
  }
}

// ---- scanner ----

const EOF = -1;
const QUOTED = -2;
const VALUE = -3;
const FIELD = -4;
const SEPARATOR = -5;
const OPERATOR = -6;
const ILLEGAL = -7;

interface Token {
  pos: number;
  token: number;
  text: string;
}

const isFieldChar = (c: string): boolean => /^[A-Za-z0-9_]$/.test(c);
const isOperatorChar = (c: string): boolean => c === '=' || c === '!' || c === '~';
const isQuoteChar = (c: string): boolean => c === '/' || c === '|' || c === '"';
const isSeparatorChar = (c: string): boolean => c === ',' || c === '.';
const isSpace = (c: string): boolean => /^\s$/u.test(c);
// Go's unicode.IsGraphic etc.: any printable character but space and comma.
const isValueChar = (c: string): boolean => c !== ',' && !isSpace(c) && /^[\p{L}\p{N}\p{P}\p{S}\p{M}]$/u.test(c);

function digitVal(c: string | undefined): number {
  if (c === undefined) return 16;
  const n = parseInt(c, 16);
  return Number.isNaN(n) || c.length !== 1 ? 16 : n;
}

class Scanner {
  /** Start of the current character. */
  pos = 0;
  /** End of the current character. */
  ppos = 0;
  /** The next token is a value (set after an operator). */
  private value = false;
  err = '';

  constructor(readonly input: string) {}

  /** The next character, or undefined at the end of the input. */
  next(): string | undefined {
    if (this.pos >= this.input.length) return undefined;
    this.pos = this.ppos;
    const c = this.input.codePointAt(this.ppos);
    if (c === undefined) return undefined;
    const ch = String.fromCodePoint(c);
    this.ppos += ch.length;
    if (c === 0) {
      this.error('unexpected null');
      return '\0';
    }
    return ch;
  }

  peek(): string | undefined {
    const { pos, ppos } = this;
    const ch = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return ch;
  }

  scan(): Token {
    let ch = this.next();
    let pos = this.pos;
    for (;;) {
      if (ch === undefined) return { pos: this.pos, token: EOF, text: '' };
      if (ch === '\0') return { pos: this.pos, token: ILLEGAL, text: '' };
      if (isQuoteChar(ch)) {
        const ok = this.scanQuoted(ch);
        return { pos, token: ok ? QUOTED : ILLEGAL, text: this.input.slice(pos, this.ppos) };
      }
      if (isSeparatorChar(ch)) {
        this.value = false;
        return { pos, token: SEPARATOR, text: ch };
      }
      if (isOperatorChar(ch)) {
        while (isOperatorChar(this.peek() ?? '')) this.next();
        this.value = true;
        return { pos, token: OPERATOR, text: this.input.slice(pos, this.ppos) };
      }
      if (isSpace(ch)) {
        ch = this.next();
        pos = this.pos;
        continue;
      }
      if (this.value) {
        while (isValueChar(this.peek() ?? ',')) this.next();
        this.value = false;
        return { pos, token: VALUE, text: this.input.slice(pos, this.ppos) };
      }
      if (isFieldChar(ch)) {
        while (isFieldChar(this.peek() ?? '')) this.next();
        return { pos, token: FIELD, text: this.input.slice(pos, this.ppos) };
      }
      return { pos: this.pos, token: ch.codePointAt(0)!, text: '' };
    }
  }

  private scanQuoted(quote: string): boolean {
    let illegal = false;
    let ch = this.next();
    while (ch !== quote) {
      if (ch === '\n' || ch === undefined || ch === '\0') {
        this.error('quoted literal not terminated');
        return false;
      }
      if (ch === '\\') {
        const [next, legal] = this.scanEscape(quote);
        ch = next;
        if (!legal) illegal = true;
      } else {
        ch = this.next();
      }
    }
    return !illegal;
  }

  private scanEscape(quote: string): [string | undefined, boolean] {
    const ch = this.next();
    if (ch !== undefined && 'abfnrtv\\'.includes(ch)) return [this.next(), true];
    if (ch === quote) return [this.next(), true];
    if (ch !== undefined && ch >= '0' && ch <= '7') return this.scanDigits(ch, 8, 3);
    if (ch === 'x') return this.scanDigits(this.next(), 16, 2);
    if (ch === 'u') return this.scanDigits(this.next(), 16, 4);
    if (ch === 'U') return this.scanDigits(this.next(), 16, 8);
    this.error('illegal escape sequence');
    return [ch, false];
  }

  private scanDigits(first: string | undefined, base: number, n: number): [string | undefined, boolean] {
    let ch = first;
    while (n > 0 && digitVal(ch) < base) {
      ch = this.next();
      n--;
    }
    if (n > 0) {
      this.error('illegal numeric escape sequence');
      return [ch, false];
    }
    return [ch, true];
  }

  private error(message: string): void {
    if (this.err === '') this.err = message;
  }
}

// ---- unquoting (Go's strconv.Unquote, with / and | as extra quotes) ----

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92 };

class QuoteSyntaxError extends Error {
  constructor() {
    super('invalid syntax');
  }
}

function unquote(s: string): string {
  if (s.length < 2) throw new QuoteSyntaxError();
  const quote = s[0]!;
  if (quote !== s[s.length - 1]) throw new QuoteSyntaxError();
  const body = s.slice(1, -1);
  if (quote === '`') {
    if (body.includes('`')) throw new QuoteSyntaxError();
    return body.replaceAll('\r', '');
  }
  if (!`"'|/`.includes(quote) || body.includes('\n')) throw new QuoteSyntaxError();
  const bytes: number[] = [];
  let i = 0;
  while (i < body.length) {
    const c = body[i]!;
    if (c === quote && quote !== '`') throw new QuoteSyntaxError();
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...Buffer.from(ch, 'utf8'));
      i += ch.length;
    } else {
      i = unquoteEscape(body, i + 1, quote, bytes);
    }
    if (quote === "'" && i < body.length) throw new QuoteSyntaxError();
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Decodes one escape starting after its backslash; returns the index after it. */
function unquoteEscape(s: string, i: number, quote: string, out: number[]): number {
  const c = s[i];
  if (c === undefined) throw new QuoteSyntaxError();
  i++;
  if (c in SIMPLE_ESCAPES) {
    out.push(SIMPLE_ESCAPES[c]!);
    return i;
  }
  const hexLength = { x: 2, u: 4, U: 8 }[c];
  if (hexLength !== undefined) {
    const digits = s.slice(i, i + hexLength);
    if (digits.length < hexLength || !/^[0-9A-Fa-f]+$/.test(digits)) throw new QuoteSyntaxError();
    const v = parseInt(digits, 16);
    if (c === 'x') out.push(v);
    else if (v > 0x10ffff) throw new QuoteSyntaxError();
    else out.push(...Buffer.from(String.fromCodePoint(v), 'utf8'));
    return i + hexLength;
  }
  if (c >= '0' && c <= '7') {
    const digits = c + s.slice(i, i + 2);
    if (!/^[0-7]{3}$/.test(digits)) throw new QuoteSyntaxError();
    const v = parseInt(digits, 8);
    if (v > 255) throw new QuoteSyntaxError();
    out.push(v);
    return i + 2;
  }
  if (`'"|/`.includes(c) && c === quote) {
    out.push(c.charCodeAt(0));
    return i;
  }
  throw new QuoteSyntaxError();
}

// ---- parser ----

class Parser {
  private readonly scanner: Scanner;

  constructor(private readonly input: string) {
    this.scanner = new Scanner(input);
  }

  parse(): Selector[] {
    const selectors = [this.selector()];
    for (;;) {
      const c = this.scanner.peek();
      if (c === undefined) return selectors;
      if (c !== ',') this.fail(this.scanner.ppos, `unexpected input: ${c}`);
      this.scanner.scan();
      selectors.push(this.selector());
    }
  }

  private selector(): Selector {
    const fieldpath = this.fieldpath();
    const c = this.scanner.peek();
    if (c === undefined || c === ',') return { fieldpath, operator: 'present', value: '' };
    const operator = this.operator();
    const { pos, value } = this.value(operator === '~=');
    if (operator !== '~=') return { fieldpath, operator, value };
    return { fieldpath, operator, value, regexp: this.regexp(value, pos) };
  }

  private fieldpath(): string[] {
    const path = [this.field()];
    while (this.scanner.peek() === '.') {
      this.scanner.scan();
      path.push(this.field());
    }
    return path;
  }

  private field(): string {
    const { pos, token, text } = this.scanner.scan();
    if (token === FIELD) return text;
    if (token === QUOTED) return this.unquote(pos, text, false);
    if (token === ILLEGAL) this.fail(pos, this.scanner.err);
    return this.fail(pos, 'expected field or quoted');
  }

  private operator(): Exclude<Operator, 'present'> {
    const { pos, token, text } = this.scanner.scan();
    if (token === OPERATOR) {
      if (text === '==' || text === '!=' || text === '~=') return text;
      this.fail(pos, `unsupported operator ${JSON.stringify(text)}`);
    }
    if (token === ILLEGAL) this.fail(pos, this.scanner.err);
    return this.fail(pos, 'expected an operator ("=="|"!="|"~=")');
  }

  private value(allowAltQuotes: boolean): { pos: number; value: string } {
    const { pos, token, text } = this.scanner.scan();
    if (token === VALUE || token === FIELD) return { pos, value: text };
    if (token === QUOTED) return { pos, value: this.unquote(pos, text, allowAltQuotes) };
    if (token === ILLEGAL) this.fail(pos, this.scanner.err);
    return this.fail(pos, 'expected value or quoted');
  }

  private unquote(pos: number, text: string, allowAlts: boolean): string {
    if (!allowAlts && text[0] !== "'" && text[0] !== '"') this.fail(pos, 'invalid quote encountered');
    try {
      return unquote(text);
    } catch (e) {
      return this.fail(pos, `unquoting failed: ${(e as Error).message}`);
    }
  }

  private regexp(source: string, pos: number): RegExp {
    try {
      return goRegExp(source);
    } catch (e) {
      return this.fail(pos, `invalid regular expression: ${(e as Error).message}`);
    }
  }

  /** containerd's parse error text, plus the byte offset of the error. */
  private fail(pos: number, message: string): never {
    let where = `[${this.input}]`;
    if (pos < this.input.length) {
      const at = String.fromCodePoint(this.input.codePointAt(pos)!);
      where = `[${this.input.slice(0, pos)} >|${at}|< ${this.input.slice(pos + at.length)}]`;
    }
    const offset = Buffer.byteLength(this.input.slice(0, pos));
    throw invalidArgument(`filters: parse error: ${where}: ${message} (position ${offset})`);
  }
}

/** Go (RE2) regexp syntax in JavaScript: leading (?flags), (?P<name>…), leading \A and trailing \z. */
function goRegExp(source: string): RegExp {
  let flags = '';
  const leading = /^\(\?([ims]+)\)/.exec(source);
  if (leading) {
    flags = [...new Set(leading[1]!)].join('');
    source = source.slice(leading[0].length);
  }
  source = source
    .replaceAll('(?P<', '(?<')
    .replace(/^\\A/, '(?<![\\s\\S])')
    .replace(/\\z$/, '(?![\\s\\S])');
  return new RegExp(source, flags);
}

/** Field adaptor for content info, as containerd's content.AdaptInfo (size is not filterable there either). */
export function infoAdaptor(info: { digest: string; labels: Record<string, string> }): FieldAdaptor {
  return (path) => {
    switch (path[0]) {
      case 'digest':
        return info.digest;
      case 'labels':
        return labelValue(path, info.labels);
      default:
        return undefined;
    }
  };
}

/** Field adaptor for ingest statuses: only the ref, as containerd's. */
export function statusAdaptor(status: { ref: string }): FieldAdaptor {
  return (path) => (path[0] === 'ref' ? status.ref : undefined);
}

/** Field adaptor for leases, as containerd's metadata adaptLease. */
export function leaseAdaptor(lease: { id: string; labels: Record<string, string> }): FieldAdaptor {
  return (path) => {
    switch (path[0]) {
      case 'id':
        return lease.id || undefined;
      case 'labels':
        return labelValue(path, lease.labels);
      default:
        return undefined;
    }
  };
}

/** containerd's checkMap: the rest of the path, joined with dots, is the label key. */
function labelValue(path: string[], labels: Record<string, string>): string | undefined {
  const key = path.slice(1).join('.');
  return Object.hasOwn(labels, key) ? labels[key] : undefined;
}
